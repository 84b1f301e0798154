"""Benchmarks run by ``make bench``: figures for docs/benchmarks.md, never assertions in the test suite."""

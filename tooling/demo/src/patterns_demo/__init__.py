"""`make demo` (``python -m local demo``): one scenario through all five patterns on the local stack.

It starts the stack of docs/local-stack.md (the Salesforce emulator, moto, the ERP, billing and logistics
stand-ins, the API Gateway emulation wired from template.yaml), seeds what the scenario needs, drives each
pattern through its real entry point, prints what happened, verifies every effect in the systems themselves
and exits 1 naming what did not happen. The code is in ``scenario.py`` (the five patterns), ``story.py`` (the
terminal output and the checks) and ``cli.py`` (options, start-up and clean-up).

Kept free of imports: the local stack imports every package under local/ when it looks for stand-ins.
"""

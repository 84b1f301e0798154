"""Bulk API 2.0 CSV plumbing that needs no server: part splitting and streamed parsing."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest
import requests

from salesforce_access.bulk import BulkApi, csv_value, iter_text_lines


class StreamedResponse(requests.Response):
    """A response whose body arrives in the given chunks, as from a socket."""

    def __init__(self, chunks: list[bytes]):
        super().__init__()
        self.status_code = 200
        self._chunks = chunks

    def iter_content(self, chunk_size=1, decode_unicode=False):
        yield from self._chunks


SIZES: list[int] = []


def parts_of(rows, max_part_bytes, columns=None) -> list[list[list[str]]]:
    bulk = BulkApi(access=None)  # type: ignore[arg-type]  # splitting needs no access
    parts = []
    SIZES.clear()
    for part in bulk._parts(iter(rows), columns, max_part_bytes):
        with part:
            raw = part.read()
        SIZES.append(len(raw))
        parts.append(list(csv.reader(io.StringIO(raw.decode(), newline=""))))
    return parts


def test_rows_are_split_into_parts_each_with_a_header() -> None:
    rows = [{"Name": f"Account {i:03d}", "Phone": None} for i in range(100)]
    parts = parts_of(rows, max_part_bytes=500)
    assert len(parts) > 1
    for part in parts:
        assert part[0] == ["Name", "Phone"]
    assert max(SIZES) <= 500
    assert min(SIZES[:-1]) > 450  # parts are filled, not cut early
    body = [row for part in parts for row in part[1:]]
    assert body == [[f"Account {i:03d}", ""] for i in range(100)]


def test_values_and_quoting() -> None:
    rows = [{"Name": 'He said "hi", then\nleft', "Active": True, "Since": date(2024, 1, 2), "N": 3}]
    assert parts_of(rows, 10_000) == [[["Name", "Active", "Since", "N"],
                                       ['He said "hi", then\nleft', "true", "2024-01-02", "3"]]]
    assert csv_value(None) == ""
    assert csv_value(False) == "false"


def test_unknown_columns_and_oversized_rows_are_refused() -> None:
    with pytest.raises(ValueError, match="Extra"):
        parts_of([{"Name": "a"}, {"Name": "b", "Extra": "x"}], 10_000)
    with pytest.raises(ValueError, match="larger"):
        parts_of([{"Name": "x" * 200}], 100)
    assert parts_of([], 100) == []


def test_streamed_lines_keep_quoted_newlines_and_multibyte_characters_across_chunks() -> None:
    body = 'Id,Name\r\n1,"two\nlines"\r\n2,Zoë Straße\n3,"a ""quoted"" word"\n'.encode()
    chunks = [body[i:i + 3] for i in range(0, len(body), 3)]  # splits "ë" and "ß" between chunks
    rows = list(csv.DictReader(iter_text_lines(StreamedResponse(chunks))))
    assert rows == [{"Id": "1", "Name": "two\nlines"}, {"Id": "2", "Name": "Zoë Straße"},
                    {"Id": "3", "Name": 'a "quoted" word'}]


def test_last_line_without_newline_and_bom() -> None:
    rows = list(csv.DictReader(iter_text_lines(StreamedResponse(["\ufeffId\n1\n2".encode()]))))
    assert rows == [{"Id": "1"}, {"Id": "2"}]

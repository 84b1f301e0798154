"""Salesforce record ids: 15 case-sensitive characters plus a 3-character case-safe suffix."""

from __future__ import annotations

import itertools
import re
import threading

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_SHAPE = re.compile(r"^[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$")
ORG_ID = "00D000000000001EAA"


def case_safe(id15: str) -> str:
    """Append the checksum suffix Salesforce computes from the case of each 5-character chunk."""
    suffix = ""
    for chunk in (id15[0:5], id15[5:10], id15[10:15]):
        bits = sum(1 << i for i, ch in enumerate(chunk) if "A" <= ch <= "Z")
        suffix += _SUFFIX[bits]
    return id15 + suffix


def is_well_formed(value: str) -> bool:
    """True for a 15- or 18-character id whose 18-character suffix (if any) matches its case."""
    if not isinstance(value, str) or not _ID_SHAPE.match(value):
        return False
    return len(value) == 15 or case_safe(value[:15]).lower() == value.lower()


def to18(value: str) -> str:
    """Normalize a well-formed 15- or 18-character id to its canonical 18-character form."""
    return case_safe(value[:15])


class IdFactory:
    """Hands out ids per key prefix; seeded from the store so restarts never reuse an id."""

    def __init__(self, pod: str = "0X"):
        self._pod = pod
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def advance_past(self, used: int) -> None:
        with self._lock:
            self._counter = itertools.count(used + 1)

    def new(self, prefix: str) -> str:
        with self._lock:
            n = next(self._counter)
        body = ""
        for _ in range(8):
            n, rem = divmod(n, 62)
            body = _ALPHABET[rem] + body
        return case_safe(f"{prefix}{self._pod}00{body}")

    @staticmethod
    def serial(record_id: str) -> int:
        """The counter value encoded in an id this factory made (0 for foreign ids)."""
        n = 0
        for ch in record_id[7:15]:
            idx = _ALPHABET.find(ch)
            if idx < 0:
                return 0
            n = n * 62 + idx
        return n

"""SQLite persistence for records, unique values, tokens, counters and feature state.

One connection guarded by one re-entrant lock: the emulator serves many threads, and SQLite with a
single writer keeps every request atomic without a connection pool. ``transaction()`` nests through
savepoints, so a Composite allOrNone request can roll back everything its subrequests wrote.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id TEXT PRIMARY KEY,
    sobject TEXT NOT NULL,
    data TEXT NOT NULL,
    is_deleted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS records_by_object ON records (sobject, is_deleted);
CREATE TABLE IF NOT EXISTS unique_values (
    sobject TEXT NOT NULL, field TEXT NOT NULL, value TEXT NOT NULL, record_id TEXT NOT NULL,
    PRIMARY KEY (sobject, field, value)
);
CREATE INDEX IF NOT EXISTS unique_values_by_record ON unique_values (record_id);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS kv (namespace TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (namespace, key));
"""


class Store:
    """Records are JSON documents keyed by Id; feature modules keep their own state in ``kv``."""

    def __init__(self, path: Path | None):
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            str(path) if path else ":memory:", check_same_thread=False, isolation_level=None
        )
        self._conn.execute("PRAGMA journal_mode=WAL" if path else "PRAGMA journal_mode=MEMORY")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        self._depth = 0

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together or not at all; nested calls become savepoints."""
        with self._lock:
            name = f"sp{self._depth}"
            self._conn.execute(f"SAVEPOINT {name}")
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                self._conn.execute(f"ROLLBACK TO {name}")
                self._conn.execute(f"RELEASE {name}")
                raise
            self._depth -= 1
            self._conn.execute(f"RELEASE {name}")

    # -- records ---------------------------------------------------------------------------------

    def insert(self, sobject: str, record: dict) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO records (id, sobject, data, is_deleted) VALUES (?, ?, ?, ?)",
                (record["Id"], sobject, json.dumps(record), int(bool(record.get("IsDeleted")))),
            )

    def replace(self, record: dict) -> None:
        with self._lock:
            self._conn.execute(
                "UPDATE records SET data = ?, is_deleted = ? WHERE id = ?",
                (json.dumps(record), int(bool(record.get("IsDeleted"))), record["Id"]),
            )

    def get(self, record_id: str) -> dict | None:
        with self._lock:
            row = self._conn.execute("SELECT data FROM records WHERE id = ?", (record_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def scan(self, sobject: str, include_deleted: bool = False) -> Iterator[dict]:
        """Every record of one object, read under the lock in one go (a consistent snapshot)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT data FROM records WHERE sobject = ? AND is_deleted <= ? ORDER BY rowid",
                (sobject, 1 if include_deleted else 0),
            ).fetchall()
        loads = json.loads
        for (data,) in rows:
            yield loads(data)

    def count(self, sobject: str) -> int:
        with self._lock:
            return self._conn.execute(
                "SELECT COUNT(*) FROM records WHERE sobject = ? AND is_deleted = 0", (sobject,)
            ).fetchone()[0]

    def purge(self, record_id: str) -> None:
        """Remove a record for good (Bulk API hardDelete): not even queryAll sees it afterwards."""
        with self._lock:
            self._conn.execute("DELETE FROM records WHERE id = ?", (record_id,))
            self._conn.execute("DELETE FROM unique_values WHERE record_id = ?", (record_id,))

    def max_record_serial_source(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._conn.execute("SELECT id FROM records").fetchall()]

    # -- unique values (external ids and unique fields, case-insensitive) ------------------------

    def unique_owner(self, sobject: str, field: str, value: str) -> str | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT record_id FROM unique_values WHERE sobject = ? AND field = ? AND value = ?",
                (sobject, field, value.lower()),
            ).fetchone()
        return row[0] if row else None

    def set_unique(self, sobject: str, field: str, value: str | None, record_id: str) -> None:
        with self._lock:
            self._conn.execute(
                "DELETE FROM unique_values WHERE sobject = ? AND field = ? AND record_id = ?",
                (sobject, field, record_id),
            )
            if value is not None:
                self._conn.execute(
                    "INSERT INTO unique_values (sobject, field, value, record_id) VALUES (?, ?, ?, ?)",
                    (sobject, field, value.lower(), record_id),
                )

    def drop_unique(self, record_id: str) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM unique_values WHERE record_id = ?", (record_id,))

    # -- counters and key/value state ------------------------------------------------------------

    def next_counter(self, name: str, start: int = 1) -> int:
        with self._lock:
            row = self._conn.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
            value = (row[0] + 1) if row else start
            self._conn.execute(
                "INSERT INTO counters (name, value) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                (name, value),
            )
            return value

    def get_counter(self, name: str) -> int:
        with self._lock:
            row = self._conn.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return row[0] if row else 0

    def set_counter(self, name: str, value: int) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO counters (name, value) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                (name, value),
            )

    def kv_put(self, namespace: str, key: str, value: object) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO kv (namespace, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT(namespace, key) DO UPDATE SET value = excluded.value",
                (namespace, key, json.dumps(value)),
            )

    def kv_get(self, namespace: str, key: str) -> object | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT value FROM kv WHERE namespace = ? AND key = ?", (namespace, key)
            ).fetchone()
        return json.loads(row[0]) if row else None

    def kv_delete(self, namespace: str, key: str) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM kv WHERE namespace = ? AND key = ?", (namespace, key))

    def kv_items(self, namespace: str) -> list[tuple[str, object]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT key, value FROM kv WHERE namespace = ? ORDER BY rowid", (namespace,)
            ).fetchall()
        return [(k, json.loads(v)) for k, v in rows]

    def execute(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Raw access for feature modules that keep their own tables (created with IF NOT EXISTS)."""
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def executescript(self, sql: str) -> None:
        with self._lock:
            self._conn.executescript(sql)

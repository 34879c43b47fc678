"""The batch journal: the answers of a batch, written as they arrive, so that the same batch run again
after an interrupt, an error or a crash of the kernel sends only the items that had not finished.

It is not the response cache (`_cache.py`): it is on by default for `batch()` and `--over` (`resume=False`
turns it off), single cells never use it, and a batch that completes (every item answered) drops its
entries, so running it again asks again (unless the response cache is on). An entry's key is the cache's
`request_key`: the SHA-256 of the base URL, the endpoint and the request body, never the API key; the
value is the final JSON of the answer. `batch` is the SHA-256 of all the item keys of the batch in input
order, kept to count batches in `%aihubmix cache info`.

The file is `journal.sqlite` next to the response cache's file (`~/.cache/aihubmix-magic/` by default),
private to the user as the cache is (`_cache.make_private`). Each operation opens its own connection.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

from .cache import SQLiteFile, default_cache_path

__all__ = ["Journal", "batch_id", "journal_for", "journal_path"]

_SCHEMA = """CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    batch TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    raw TEXT NOT NULL,
    created REAL NOT NULL
)"""
_CHUNK = 500  # keys per IN (...) query: below SQLite's limit on bound parameters


def journal_path(cache_path: str | os.PathLike[str] | None = None) -> Path:
    """`journal.sqlite` in the directory of the response cache's file."""
    base = Path(cache_path).expanduser() if cache_path else default_cache_path()
    return base.with_name("journal.sqlite")


def batch_id(keys: Sequence[str]) -> str:
    """The identity of a batch: the SHA-256 of its item keys in input order."""
    digest = hashlib.sha256()
    for key in keys:
        digest.update(key.encode())
    return digest.hexdigest()


class Journal(SQLiteFile):
    """Finished answers of batches in one SQLite file, keyed by `request_key`."""

    SCHEMA = (_SCHEMA, "CREATE INDEX IF NOT EXISTS answers_batch ON answers (batch)")

    def lookup(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The journaled answers (final JSON) of those of `keys` that have one."""
        found: dict[str, dict[str, Any]] = {}
        if not keys:
            return found
        with closing(self._connect()) as db:
            for start in range(0, len(keys), _CHUNK):
                chunk = list(keys[start:start + _CHUNK])
                marks = ",".join("?" * len(chunk))
                for key, text in db.execute(f"SELECT key, raw FROM answers WHERE key IN ({marks})", chunk):
                    try:
                        raw = json.loads(text)
                    except ValueError:
                        continue
                    if isinstance(raw, dict):
                        found[key] = raw
        return found

    def record(self, rows: Iterable[tuple[str, str, str, str]]) -> int:
        """Store (key, batch, endpoint, final JSON text) rows in one transaction; returns how many."""
        now = time.time()
        values = [(key, batch, endpoint, raw, now) for key, batch, endpoint, raw in rows]
        if values:
            with closing(self._connect()) as db, db:
                db.executemany("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?)", values)
        return len(values)

    def drop(self, keys: Sequence[str], *, batch: str | None = None) -> int:
        """Delete the entries of `keys` and those written by `batch` (a batch that completed); returns how
        many there were."""
        if not (keys or batch) or not self.path.exists():
            return 0
        dropped = 0
        with closing(self._connect()) as db, db:
            if batch is not None:
                dropped += db.execute("DELETE FROM answers WHERE batch = ?", (batch,)).rowcount
            for start in range(0, len(keys), _CHUNK):
                chunk = list(keys[start:start + _CHUNK])
                marks = ",".join("?" * len(chunk))
                dropped += db.execute(f"DELETE FROM answers WHERE key IN ({marks})", chunk).rowcount
        return dropped

    def clear(self) -> int:
        """Delete every entry; returns how many there were."""
        if not self.path.exists():
            return 0
        with closing(self._connect()) as db, db:
            count: int = db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
            db.execute("DELETE FROM answers")
        with closing(self._connect()) as db:
            db.execute("VACUUM")
        return count

    def info(self) -> dict[str, Any]:
        """entries, batches (unfinished batches with entries), size (bytes on disk), path."""
        entries = batches = 0
        if self.path.exists():
            with closing(self._connect()) as db:
                entries, batches = db.execute("SELECT COUNT(*), COUNT(DISTINCT batch) FROM answers").fetchone()
        size = self.path.stat().st_size if self.path.exists() else 0
        return {"entries": entries, "batches": batches, "size": size, "path": str(self.path)}


_journals: dict[Path, Journal] = {}


def journal_for(cache_path: str | os.PathLike[str] | None = None) -> Journal:
    """The Journal next to the response cache at `cache_path` (default: `default_cache_path()`)."""
    path = journal_path(cache_path)
    journal = _journals.get(path)
    if journal is None:
        journal = _journals[path] = Journal(path)
    return journal

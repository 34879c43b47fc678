"""The response cache: an identical request is answered from a local SQLite file, without the network.

Opt-in (`%aihubmix cache on`, `--cache` on a `%%aihubmix` line, or `settings.cache = True`), so that
re-running a teaching notebook costs nothing. The key of an entry is the SHA-256 of the canonical JSON of
the base URL, the endpoint and the request body (without `stream`/`stream_options`: a streamed and a
non-streamed request for the same thing share an entry). The API key is never part of the key nor of the
file. Only completed answers are stored; the value is the final JSON (`Response.raw`), from which a hit
rebuilds a complete Response marked `cached`.

The file is `settings.cache_path`, else `$AIHUBMIX_CACHE_PATH`, else
`$XDG_CACHE_HOME/aihubmix-magic/responses.sqlite` (`~/.cache/...`). Each operation opens and closes its
own connection, so the cache can be used from any thread.

The prompts and answers in it are a user's data: the directory is made 0700 and the files 0600, whatever
the umask, and an existing cache made before that rule is tightened on first use (`make_private`; the
batch journal, `_journal.py`, lives in the same directory under the same rule).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.protocol import response_from_json

if TYPE_CHECKING:
    from ..core.request import Request
    from ..core.response import Response

__all__ = ["APP_DIRECTORY", "ResponseCache", "SQLiteFile", "cache_for", "default_cache_path", "make_private", "request_key"]

APP_DIRECTORY = "aihubmix-magic"  # the default directory's name: always made private
_STREAM_FIELDS = ("stream", "stream_options")
_SIDE_FILES = ("-journal", "-wal", "-shm")  # what SQLite writes next to a database
_SCHEMA = """CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    endpoint TEXT NOT NULL,
    model TEXT NOT NULL,
    raw TEXT NOT NULL,
    created REAL NOT NULL
)"""


def default_cache_path() -> Path:
    env = os.environ.get("AIHUBMIX_CACHE_PATH")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / APP_DIRECTORY / "responses.sqlite"


def make_private(path: Path) -> None:
    """Create `path` (an SQLite file) readable by its owner only: the file and SQLite's side files 0600,
    whatever the umask; its directory 0700 when it is created here or is our own default directory (a
    directory the user chose for `cache_path` and that exists already is left as it is)."""
    directory = path.parent
    created = not directory.exists()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if created or directory.name == APP_DIRECTORY:
        try:
            os.chmod(directory, 0o700)
        except PermissionError:  # a directory of someone else's: the files below are still private
            pass
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))  # never readable by others, not even for a moment
    for candidate in (path, *(path.with_name(path.name + suffix) for suffix in _SIDE_FILES)):
        if candidate.exists():
            os.chmod(candidate, 0o600)


def request_key(endpoint: str, base_url: str, body: dict) -> str:
    """SHA-256 of the canonical JSON of what identifies an answer (never the API key)."""
    request = {name: value for name, value in body.items() if name not in _STREAM_FIELDS}
    canonical = json.dumps({"base_url": base_url.rstrip("/"), "endpoint": endpoint, "body": request},
                           sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class SQLiteFile:
    """One private SQLite file (0700 folder, 0600 file), its tables made on first use; each operation opens
    and closes its own connection, so it can be used from any thread. The response cache and the batch
    journal are two of these."""

    SCHEMA: tuple[str, ...] = ()  # statements run once, when the file is first used

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()
        self._ready = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {str(self.path)!r}>"

    def _connect(self) -> sqlite3.Connection:
        if not self._ready:
            with self._lock:
                make_private(self.path)
                with closing(sqlite3.connect(self.path, timeout=10)) as db, db:
                    for statement in self.SCHEMA:
                        db.execute(statement)
                self._ready = True
        return sqlite3.connect(self.path, timeout=10)


class ResponseCache(SQLiteFile):
    """Completed answers in one SQLite file, keyed by `request_key`."""

    SCHEMA = (_SCHEMA,)

    # -- lookups -----------------------------------------------------------------------------------------
    def get(self, endpoint: str, base_url: str, body: dict, spec: Request | None = None) -> Response | None:
        """A complete Response rebuilt from the stored answer, or None."""
        raw = self._get_raw(request_key(endpoint, base_url, body))
        return None if raw is None else response_from_json(spec, body, raw, endpoint=endpoint, cached=True)

    def get_many(self, endpoint: str, base_url: str, bodies: list[dict],
                 specs: list[Request] | None = None) -> list[Response | None]:
        """`get` for many bodies with one connection (what a batch does first)."""
        keys = [request_key(endpoint, base_url, body) for body in bodies]
        found: dict[str, str] = {}
        with closing(self._connect()) as db:
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                marks = ",".join("?" * len(chunk))
                found.update(db.execute(f"SELECT key, raw FROM responses WHERE key IN ({marks})", chunk))
        results: list[Response | None] = []
        for number, (key, body) in enumerate(zip(keys, bodies, strict=True)):
            raw = _loads(found.get(key))
            spec = specs[number] if specs is not None else None
            results.append(None if raw is None else response_from_json(spec, body, raw, endpoint=endpoint,
                                                                       cached=True))
        return results

    def _get_raw(self, key: str) -> dict | None:
        with closing(self._connect()) as db:
            row = db.execute("SELECT raw FROM responses WHERE key = ?", (key,)).fetchone()
        return _loads(row[0] if row else None)

    # -- storing -----------------------------------------------------------------------------------------
    def put(self, response: Response, base_url: str) -> bool:
        """Store a completed answer; anything else (failed, cancelled, cut short, cached) is skipped."""
        return self.put_many([response], base_url) == 1

    def put_many(self, responses: list[Response], base_url: str) -> int:
        rows = [
            (request_key(r.endpoint, base_url, r.request), r.endpoint, r.model or "",
             r.raw_json(), time.time())
            for r in responses
            if r.status == "completed" and r.error is None and r.raw_json() is not None and not r.cached
        ]
        if rows:
            with closing(self._connect()) as db, db:
                db.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)", rows)
        return len(rows)

    # -- housekeeping ------------------------------------------------------------------------------------
    def clear(self) -> int:
        """Delete every entry; returns how many there were."""
        with closing(self._connect()) as db, db:
            count = db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
            db.execute("DELETE FROM responses")
        with closing(self._connect()) as db:
            db.execute("VACUUM")
        return count

    def info(self) -> dict:
        """entries, size (bytes on disk), path."""
        entries = 0
        if self.path.exists():
            with closing(self._connect()) as db:
                entries = db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        size = self.path.stat().st_size if self.path.exists() else 0
        return {"entries": entries, "size": size, "path": str(self.path)}


def _loads(text: str | None) -> dict | None:
    if text is None:
        return None
    try:
        raw = json.loads(text)
    except ValueError:
        return None
    return raw if isinstance(raw, dict) else None


_caches: dict[Path, ResponseCache] = {}


def cache_for(path: str | os.PathLike | None = None) -> ResponseCache:
    """The ResponseCache of `path` (default: `default_cache_path()`), one object per file."""
    resolved = Path(path).expanduser() if path else default_cache_path()
    cache = _caches.get(resolved)
    if cache is None:
        cache = _caches[resolved] = ResponseCache(resolved)
    return cache

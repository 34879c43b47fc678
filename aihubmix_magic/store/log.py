"""The log: every exchange (a cell, each `--compare` column, `fix`, each tool step, a batch run) in one
SQLite file, written as it finishes, searchable (`%aihubmix log TEXT`, `logs()`), and the memory that lets
a conversation thread survive a kernel restart.

Where: `$AIHUBMIX_DATA_DIR/log.sqlite`, else `$XDG_DATA_HOME/aihubmix-magic/log.sqlite`, else
`~/.local/share/aihubmix-magic/log.sqlite`. The directory is made 0700 and the files 0600 (`make_private`,
as for the response cache). The log holds what was asked and answered (the prompt, the answer, the model,
the usage, the estimated cost, the thread), never the key nor any header; any of the session's keys that
a prompt or an answer quotes is masked before it is written.

One row per exchange in `exchanges`; `kind` says what made it:

    cell        a %%aihubmix cell (with --tools: the final answer, its usage summed over the steps)
    compare     one column of --compare
    fix         %aihubmix fix
    tool_step   one step of a tool loop that asked for tools (its usage is in the cell's row too)
    batch       one run of batch() / --over: the template, the model, counts, tokens and cost
    batch_item  one item of a batch, only with `batch(..., log_items=True)`

Spend over time (`%aihubmix cost --today`, the `…/day` budget) sums `cost` over the kinds that are not
contained in another row (`SPEND_KINDS`).

Two kernels may write at once: the file is in WAL mode with a busy timeout, each write is one short
transaction on its own connection. The schema has a version (`PRAGMA user_version`) and migrations, applied
in order when a file is first opened (`MIGRATIONS`). Full-text search uses SQLite's FTS5 where the build
has it (an external-content index kept by triggers), LIKE otherwise.

A log that cannot be written (corrupt, locked for longer than the timeout, a read-only disk) never fails a
cell: one RuntimeWarning per file and kernel, and the exchange goes unlogged. `settings.log = False`
(`%aihubmix log off`) stops writing.

sqlite3 only; imported when a cell first finishes, not at `%load_ext`.
"""

from __future__ import annotations

import atexit
import json
import os
import sqlite3
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from .cache import APP_DIRECTORY, make_private

__all__ = ["COLUMNS", "SCHEMA_VERSION", "SEARCHED_KINDS", "SPEND_KINDS", "Log", "data_dir", "default_log_path",
           "log_for", "parse_since", "public_row", "response_of", "row_of"]

LOG_FILE = "log.sqlite"
BUSY_TIMEOUT_MS = 10_000
SPEND_KINDS = ("cell", "compare", "fix", "batch")  # the rows whose costs add up to what was spent
THREAD_KINDS = ("cell",)  # the rows a conversation thread is rebuilt from
COLUMNS = ("time", "model", "endpoint", "prompt", "answer", "status", "error", "input_tokens", "output_tokens",
           "cost", "thread", "id")  # what logs() returns, in this order

_FIELDS = ("time", "kind", "model", "endpoint", "prompt", "answer", "status", "error", "input_tokens",
           "output_tokens", "cost", "thread", "starts", "response_id", "content", "extra", "items", "failed")

_DEFAULTS = {"model": "", "endpoint": "", "prompt": "", "answer": "", "status": "", "starts": 0}

# version -> the statements that bring a file from the version before to it
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE IF NOT EXISTS exchanges (
            rowid INTEGER PRIMARY KEY,
            time REAL NOT NULL,
            kind TEXT NOT NULL,
            model TEXT NOT NULL DEFAULT '',
            endpoint TEXT NOT NULL DEFAULT '',
            prompt TEXT NOT NULL DEFAULT '',
            answer TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL DEFAULT '',
            error TEXT,
            input_tokens INTEGER,
            output_tokens INTEGER,
            cost REAL,
            thread TEXT,
            starts INTEGER NOT NULL DEFAULT 0,
            ended INTEGER NOT NULL DEFAULT 0,
            response_id TEXT,
            content TEXT,
            extra TEXT,
            items INTEGER,
            failed INTEGER
        )""",
        "CREATE INDEX IF NOT EXISTS exchanges_time ON exchanges (time)",
        "CREATE INDEX IF NOT EXISTS exchanges_thread ON exchanges (thread, ended)",
    ),
}
SCHEMA_VERSION = max(MIGRATIONS)

SEARCHED_KINDS = ("cell", "compare", "fix", "batch")  # what `%aihubmix log` and logs() show and index
_INDEXED = "('cell', 'compare', 'fix', 'batch')"
_FTS = (  # full-text search, where the SQLite build has FTS5 (tool steps and batch items are not indexed)
    "CREATE VIRTUAL TABLE IF NOT EXISTS exchanges_fts USING fts5(prompt, answer, content='exchanges', "
    "content_rowid='rowid')",
    f"CREATE TRIGGER IF NOT EXISTS exchanges_ai AFTER INSERT ON exchanges WHEN new.kind IN {_INDEXED} BEGIN "
    "INSERT INTO exchanges_fts(rowid, prompt, answer) VALUES (new.rowid, new.prompt, new.answer); END",
    f"CREATE TRIGGER IF NOT EXISTS exchanges_ad AFTER DELETE ON exchanges WHEN old.kind IN {_INDEXED} BEGIN "
    "INSERT INTO exchanges_fts(exchanges_fts, rowid, prompt, answer) VALUES ('delete', old.rowid, old.prompt, "
    "old.answer); END",
)


def data_dir() -> Path:
    """`$AIHUBMIX_DATA_DIR`, else `$XDG_DATA_HOME/aihubmix-magic`, else `~/.local/share/aihubmix-magic`."""
    env = os.environ.get("AIHUBMIX_DATA_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / APP_DIRECTORY


def default_log_path() -> Path:
    return data_dir() / LOG_FILE


class Log:
    """One log file. Each operation opens and closes its own connection (any thread, any process)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()
        self.fts = False
        self._ready = False
        self._warned = False
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"<Log {str(self.path)!r}>"

    # -- the file ----------------------------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        # WAL without an fsync per commit: a power cut may lose the last exchanges, never the file (a commit
        # that waits for the disk took 25 ms, longer than the cell it logs)
        db.execute("PRAGMA synchronous = NORMAL")
        return db

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """This kernel's connection to the file, kept open (closing the last connection of a WAL file
        checkpoints it, which cost more than the write), one user at a time. A failing file is closed, so
        that the next use opens it again."""
        with self._lock:
            if self._db is None:
                self._db = self.connect()
            try:
                yield self._db
            except sqlite3.DatabaseError:
                self.close()
                raise

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                try:
                    self._db.close()
                finally:
                    self._db = None

    def connect(self) -> sqlite3.Connection:
        """A new connection to the file, made private and migrated to `SCHEMA_VERSION` on first use."""
        if not self._ready:
            with self._lock:
                if not self._ready:
                    directory = self.path.parent
                    created = not directory.exists()
                    make_private(self.path)
                    if created:
                        os.chmod(directory, 0o700)
                    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
                    while True:  # switching to WAL does not wait for a busy file: another kernel may be doing it
                        try:
                            with closing(self._open()) as db:
                                self._migrate(db)
                                self.fts = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'exchanges_fts'"
                                                      ).fetchone() is not None
                            break
                        except sqlite3.OperationalError as exc:
                            if "locked" not in str(exc) or time.monotonic() > deadline:
                                raise
                            time.sleep(0.02)
                    make_private(self.path)  # the -wal and -shm files WAL mode made
                    self._ready = True
        return self._open()

    def _migrate(self, db: sqlite3.Connection) -> None:
        if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            db.execute("PRAGMA journal_mode = WAL")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version >= SCHEMA_VERSION:
            return
        db.execute("BEGIN IMMEDIATE")  # one kernel migrates; another one waits, then finds it done
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for target in sorted(MIGRATIONS):
                if target > version:
                    for statement in MIGRATIONS[target]:
                        db.execute(statement)
            if version < 1:
                try:
                    for statement in _FTS:
                        db.execute(statement)
                except sqlite3.OperationalError:  # no FTS5 in this SQLite: search falls back to LIKE
                    pass
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def failed(self, exc: BaseException) -> None:
        """One warning per file and kernel: the log cannot be written; the cell goes on."""
        if self._warned:
            return
        self._warned = True
        warnings.warn(f"The aihubmix log ({self.path}) cannot be written ({type(exc).__name__}: {exc}): exchanges "
                      "are not logged. Fix or delete the file, or turn the log off with `%aihubmix log off`.",
                      RuntimeWarning, stacklevel=3)

    # -- writing -----------------------------------------------------------------------------------------
    def write(self, rows: Sequence[dict[str, Any]]) -> int:
        """Append rows (dicts with `_FIELDS`); one transaction. Raises sqlite3.Error / OSError."""
        if not rows:
            return 0
        values = [tuple(row.get(name, _DEFAULTS.get(name)) for name in _FIELDS) for row in rows]
        marks = ", ".join("?" * len(_FIELDS))
        with self._connection() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(f"INSERT INTO exchanges ({', '.join(_FIELDS)}) VALUES ({marks})", values)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return len(values)

    def end_thread(self, name: str) -> int:
        """`%aihubmix reset NAME`: the thread's turns so far no longer continue it; returns how many."""
        with self._connection() as db:
            return db.execute("UPDATE exchanges SET ended = 1 WHERE thread = ? AND ended = 0", (name,)).rowcount

    def clear(self, before: float | None = None) -> int:
        """Delete every row (or those older than `before`, a timestamp); returns how many."""
        with self._connection() as db:
            if before is None:
                count = db.execute("DELETE FROM exchanges").rowcount
            else:
                count = db.execute("DELETE FROM exchanges WHERE time < ?", (before,)).rowcount
            db.execute("VACUUM")
        return count

    # -- reading -----------------------------------------------------------------------------------------
    def search(self, query: str | None = None, *, n: int | None = None, model: str | None = None,
               thread: str | None = None, since: float | None = None,
               kinds: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """The matching rows, newest first (at most `n`)."""
        if not self.path.exists():
            return []
        where: list[str] = []
        params: list[Any] = []
        if kinds is not None:
            kinds = tuple(kinds)
            where.append(f"e.kind IN ({', '.join('?' * len(kinds))})")
            params.extend(kinds)
        if model:
            where.append("e.model = ?")
            params.append(model)
        if thread:
            where.append("e.thread = ?")
            params.append(thread)
        if since is not None:
            where.append("e.time >= ?")
            params.append(since)
        with self._connection() as db:
            source = "exchanges e"
            words = (query or "").split()
            if words and self.fts and kinds is not None and set(kinds) <= set(SEARCHED_KINDS):
                source += " JOIN exchanges_fts f ON f.rowid = e.rowid"
                where.append("exchanges_fts MATCH ?")
                # each word a quoted prefix ("penguin" finds "penguins", as LIKE would); FTS syntax stays literal
                params.append(" ".join('"' + word.replace('"', '""') + '"*' for word in words))
            else:
                for word in words:
                    where.append("(e.prompt LIKE ? ESCAPE '\\' OR e.answer LIKE ? ESCAPE '\\')")
                    pattern = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
                    params += [pattern, pattern]
            sql = f"SELECT e.* FROM {source}" + (f" WHERE {' AND '.join(where)}" if where else "")
            sql += " ORDER BY e.time DESC, e.rowid DESC"
            if n is not None:
                sql += f" LIMIT {int(n)}"
            return _dicts(db.execute(sql, params))

    def thread_turns(self, name: str) -> list[dict[str, Any]]:
        """The turns of thread NAME that still continue it, oldest first: the answered cells since it was
        last reset (for the default thread: since the last cell that stood alone)."""
        if not self.path.exists():
            return []
        with self._connection() as db:
            rows = _dicts(db.execute(
                "SELECT * FROM exchanges WHERE thread = ? AND ended = 0 AND kind = 'cell' "
                "AND status IN ('completed', 'incomplete') ORDER BY rowid", (name,)))
        starts = [number for number, row in enumerate(rows) if row["starts"]]
        return rows[starts[-1]:] if starts else rows

    def spent(self, since: float) -> float:
        """USD spent (estimated) since `since`, a timestamp, over every kernel that logged."""
        if not self.path.exists():
            return 0.0
        with self._connection() as db:
            value = db.execute(f"SELECT SUM(cost) FROM exchanges WHERE time >= ? AND kind IN "
                               f"({', '.join('?' * len(SPEND_KINDS))})", (since, *SPEND_KINDS)).fetchone()[0]
        return float(value or 0.0)

    def spend_by_model(self, since: float) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self._connection() as db:
            rows = db.execute(
                "SELECT model, COUNT(*), SUM(COALESCE(items, 1)), SUM(COALESCE(input_tokens, 0)), "
                "SUM(COALESCE(output_tokens, 0)), SUM(COALESCE(cost, 0)), SUM(cost IS NULL) FROM exchanges "
                f"WHERE time >= ? AND kind IN ({', '.join('?' * len(SPEND_KINDS))}) GROUP BY model "
                "ORDER BY MIN(time)", (since, *SPEND_KINDS)).fetchall()
        return [{"model": model, "rows": count, "calls": calls, "input_tokens": inp, "output_tokens": out,
                 "usd": usd, "unpriced": unpriced} for model, count, calls, inp, out, usd, unpriced in rows]

    def info(self) -> dict[str, Any]:
        entries = 0
        if self.path.exists():
            with self._connection() as db:
                entries = db.execute("SELECT COUNT(*) FROM exchanges").fetchone()[0]
        size = sum(path.stat().st_size for path in (self.path, self.path.with_name(self.path.name + "-wal"))
                   if path.exists())
        return {"entries": entries, "size": size, "path": str(self.path)}


def _dicts(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]


_logs: dict[Path, Log] = {}


@atexit.register
def _close_all() -> None:
    for log in list(_logs.values()):
        log.close()


def log_for(path: str | os.PathLike[str] | None = None) -> Log:
    """The Log of `path` (default: `default_log_path()`, read now: the environment may change), one per file.
    When the default moves (AIHUBMIX_DATA_DIR changed), the previous default file's connection is closed."""
    global _default
    resolved = Path(path).expanduser() if path else default_log_path()
    log = _logs.get(resolved)
    if log is None:
        log = _logs[resolved] = Log(resolved)
    if not path and _default is not None and _default is not log:
        _default.close()  # opened again if it is ever the default again
    if not path:
        _default = log
    return log


_default: Log | None = None


# -- rows from answers ----------------------------------------------------------------------------------------
def _mask(text: str | None, keys: Sequence[str]) -> str | None:
    if not text:
        return text
    from ..core.protocol import mask_key

    for key in keys:
        if key and key in text:
            text = text.replace(key, mask_key(key))
    return text


def row_of(response: Any, kind: str, *, keys: Sequence[str] = (), thread: str | None = None,
           starts: bool = False, cost: float | None = None) -> dict[str, Any]:
    """The log row of one Response (never the key: `keys` are masked wherever they appear)."""
    spec = getattr(response, "spec", None)
    prompt = ""
    content = None
    if spec is not None and isinstance(spec.prompt, str):
        prompt = spec.prompt
        if spec.images:
            content = json.dumps(spec.user_content(), ensure_ascii=False)
    elif spec is not None:
        prompt = spec.text
    usage = getattr(response, "usage", None)
    error = getattr(response, "error", None)
    extra: dict[str, Any] = {}
    if response.request.get("store") is True:
        extra["store"] = True
    raw = vars(response).get("_raw")  # a batch keeps it as bytes: not decoded for this
    if isinstance(raw, dict) and raw.get("choices"):
        details = ((raw["choices"][0] or {}).get("message") or {}).get("reasoning_details")
        if details:
            extra["reasoning_details"] = details
    if getattr(response, "finish_reason", None):
        extra["finish_reason"] = response.finish_reason
    if getattr(response, "cached", False):
        extra["cached"] = True
    return {
        "time": time.time(), "kind": kind, "model": response.model or str(response.request.get("model", "")),
        "endpoint": response.endpoint, "prompt": _mask(prompt, keys), "answer": _mask(str(response), keys),
        "status": response.status,
        "error": _mask(f"{type(error).__name__}: {error}", keys) if error is not None else None,
        "input_tokens": usage.input_tokens if usage is not None else None,
        "output_tokens": usage.output_tokens if usage is not None else None,
        "cost": cost, "thread": thread, "starts": int(starts), "response_id": response.id,
        "content": _mask(content, keys), "extra": _mask(json.dumps(extra, ensure_ascii=False), keys) if extra else None,
    }


# -- reading for people ---------------------------------------------------------------------------------------
def parse_since(value: Any) -> float | None:
    """A point in time as a timestamp: a datetime, a date (its local midnight), an ISO string
    ("2026-12-01", "2026-12-01T10:00"), a timedelta (that long ago) or a number (a Unix time)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a date: {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, timedelta):
        return time.time() - value.total_seconds()
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not a date: write it as 2026-12-01 or 2026-12-01T10:00") from None
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day).timestamp()
    if hasattr(value, "timestamp"):  # a pandas Timestamp
        return float(value.timestamp())
    raise ValueError(f"not a date: {value!r}")


def public_row(row: dict[str, Any]) -> dict[str, Any]:
    """A stored row with `COLUMNS` (time as a datetime, id the answer's id)."""
    return {"time": datetime.fromtimestamp(row["time"]), "model": row["model"], "endpoint": row["endpoint"],
            "prompt": row["prompt"], "answer": row["answer"], "status": row["status"], "error": row["error"],
            "input_tokens": row["input_tokens"], "output_tokens": row["output_tokens"], "cost": row["cost"],
            "thread": None if row["starts"] else row["thread"], "id": row["response_id"]}


def _content(row: dict[str, Any]) -> Any:
    if row.get("content"):
        try:
            return json.loads(row["content"])
        except ValueError:
            pass
    return row["prompt"]


def _spec_of(row: dict[str, Any]) -> Any:
    """The typed Request a logged turn answered (its prompt, images, model, endpoint, thread), for export and
    history; None if it cannot be rebuilt."""
    from ..core.exceptions import InvalidRequestError
    from ..core.request import Request

    content = _content(row)
    images: tuple[str, ...] = ()
    if isinstance(content, list):
        images = tuple(part["image_url"]["url"] for part in content
                       if isinstance(part, dict) and part.get("type") == "image_url")
    try:
        return Request(model=row["model"], prompt=row["prompt"], endpoint=row["endpoint"] or "chat",
                       thread=None if row["starts"] else row["thread"], images=images)
    except (InvalidRequestError, KeyError, TypeError):
        return None


def response_of(row: dict[str, Any]) -> Any:
    """A complete Response rebuilt from a logged row (text, model, id, usage, status; no raw JSON beyond the
    assistant message's `reasoning_details`)."""
    from ..core.response import Response
    from ..core.types import Usage

    extra = json.loads(row["extra"]) if row.get("extra") else {}
    request: dict[str, Any] = {"model": row["model"]}
    if extra.get("store"):
        request["store"] = True
    usage = None
    if row["input_tokens"] is not None:
        usage = Usage(input_tokens=row["input_tokens"], output_tokens=row["output_tokens"] or 0,
                      total_tokens=row["input_tokens"] + (row["output_tokens"] or 0))
    response = Response(endpoint=row["endpoint"] or "chat", request=request, model=row["model"],
                        id=row["response_id"], status=row["status"], finish_reason=extra.get("finish_reason"),
                        usage=usage, _text=row["answer"] or "")
    if extra.get("reasoning_details"):
        response.raw = {"choices": [{"message": {"role": "assistant", "content": row["answer"],
                                                 "reasoning_details": extra["reasoning_details"]}}]}
    response.spec = _spec_of(row)
    response.elapsed = 0.0
    response.logged = True  # type: ignore[attr-defined]  # rebuilt from the log, not received in this kernel
    return response



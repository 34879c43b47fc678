"""The files of a batch: prompts read from a JSONL, CSV or Parquet file, and answers written to one as they
finish (`batch(..., out="results.jsonl")`).

- `read_rows(path)`: the rows of a prompts file, one at a time (a dict per row; a JSONL line that is a
  bare string is the row `{"": text}`), so a file of a million prompts is never held in memory. Parquet is
  read one row group at a time and needs pyarrow.
- `count_rows(path)`: the number of rows when it is cheap to know (JSONL lines, Parquet metadata), else None.
- `ResultFile`: the output. A row per finished item: `position` (the item's place in the input, from 0),
  `id` (the first 16 hex digits of the request key: the same prompt and options give the same id),
  `status`, `text`, `error`, `input_tokens`, `output_tokens`, `cost`. Opening it reads the rows already
  there, so a rerun after a crash skips the items the file has answered and appends the others. JSONL
  and CSV are appended to as rows arrive; a Parquet file cannot be appended to, so its rows go to a
  `.partial` file next to it (JSONL) and the Parquet file is written in full when the batch ends.

No request is sent from here; `_batch.py` decides what to send.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..core.exceptions import BatchInputError

__all__ = ["FILE_KINDS", "RESULT_FIELDS", "ResultFile", "count_rows", "file_kind", "read_rows", "row_mark"]

FILE_KINDS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}
RESULT_FIELDS = ("position", "id", "status", "text", "error", "input_tokens", "output_tokens", "cost")
OK_STATUSES = ("completed", "incomplete")
_PYARROW_HINT = "Parquet files need pyarrow: pip install pyarrow (or use a .jsonl or .csv file)."


def file_kind(path: str | os.PathLike[str]) -> str | None:
    """"jsonl", "csv" or "parquet" from the file's suffix; None for any other."""
    return FILE_KINDS.get(Path(path).suffix.lower())


def _pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as parquet
    except ImportError:
        raise BatchInputError(_PYARROW_HINT) from None
    return parquet


# -- input ---------------------------------------------------------------------------------------------
def read_rows(path: Path, kind: str) -> Iterator[dict[str, Any]]:
    """The rows of a prompts file, lazily."""
    if kind == "jsonl":
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except ValueError as exc:
                    raise BatchInputError(f"{path.name} line {number} is not JSON: {exc}") from None
                yield value if isinstance(value, dict) else {"": value}
    elif kind == "csv":
        with path.open(encoding="utf-8", newline="") as stream:
            yield from csv.DictReader(stream)
    else:
        parquet = _pyarrow_parquet()
        reader = parquet.ParquetFile(path)
        for group in range(reader.num_row_groups):
            yield from reader.read_row_group(group).to_pylist()


def count_rows(path: Path, kind: str) -> int | None:
    """How many rows the file has, when that is cheap to know (for the progress bar's total)."""
    if kind == "jsonl":
        count = 0
        with path.open("rb") as stream:
            for line in stream:
                count += bool(line.strip())
        return count
    if kind == "parquet":
        return int(_pyarrow_parquet().ParquetFile(path).metadata.num_rows)
    return None  # CSV: a quoted field may hold line breaks; counting would mean parsing it twice


def columns_of(path: Path, kind: str) -> list[str]:
    """The column names of a CSV or Parquet file (for error messages and checks)."""
    if kind == "csv":
        with path.open(encoding="utf-8", newline="") as stream:
            return next(csv.reader(stream), [])
    if kind == "parquet":
        return list(_pyarrow_parquet().ParquetFile(path).schema_arrow.names)
    return []


# -- output --------------------------------------------------------------------------------------------
def row_mark(position: int, prompt_id: str) -> int:
    """One int for (position, id), for the set of items a result file already answered (an int takes a
    fifth of the memory of a tuple)."""
    return (int(prompt_id, 16) << 40) ^ position


class ResultFile:
    """An output file of a batch. `answered`: the marks (`row_mark`) of the items the file already has an
    answer for (status completed or incomplete); `write(rows)` appends; `close()` finishes it."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()
        kind = file_kind(self.path)
        if kind is None:
            raise BatchInputError(f"out={str(path)!r}: write the answers to a .jsonl, .csv or .parquet file.")
        self.kind = kind
        if kind == "parquet":
            _pyarrow_parquet()  # the hint now, before anything is sent
        if not self.path.parent.is_dir():
            raise BatchInputError(f"out={str(path)!r}: the folder {str(self.path.parent)!r} does not exist.")
        self.answered: set[int] = set()
        self.rows_before = 0
        self._stream: Any = None
        self._writer: Any = None
        self._partial = self.path.with_name(self.path.name + ".partial") if kind == "parquet" else None
        self._read_existing()

    def __repr__(self) -> str:
        return f"<ResultFile {str(self.path)!r}>"

    def _existing_rows(self) -> Iterator[dict[str, Any]]:
        if self.kind == "parquet":
            if self.path.exists():
                try:
                    yield from read_rows(self.path, "parquet")
                except Exception:  # noqa: BLE001  a file cut short by a crash: its answers come from the journal
                    pass
            if self._partial is not None and self._partial.exists():
                yield from self._jsonl_rows(self._partial)
        elif self.path.exists() and self.path.stat().st_size:
            if self.kind == "jsonl":
                yield from self._jsonl_rows(self.path)
            else:
                with self.path.open(encoding="utf-8", newline="") as stream:
                    yield from csv.DictReader(stream)

    @staticmethod
    def _jsonl_rows(path: Path) -> Iterator[dict[str, Any]]:
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                try:
                    row = json.loads(line)
                except ValueError:  # a line cut short by a crash
                    continue
                if isinstance(row, dict):
                    yield row

    def _read_existing(self) -> None:
        for row in self._existing_rows():
            self.rows_before += 1
            try:
                mark = row_mark(int(row["position"]), str(row["id"]))
                if row["status"] in OK_STATUSES:
                    self.answered.add(mark)
            except (KeyError, TypeError, ValueError):
                raise BatchInputError(f"out={str(self.path)!r} exists and is not a batch's result file "
                                      f"(its rows need {', '.join(RESULT_FIELDS)}): choose another name.") from None

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Append rows (dicts with `RESULT_FIELDS`), flushed to the file at once."""
        if not rows:
            return
        if self.kind == "csv":
            if self._stream is None:
                new = not self.path.exists() or self.path.stat().st_size == 0
                self._stream = self.path.open("a", encoding="utf-8", newline="")
                self._writer = csv.DictWriter(self._stream, RESULT_FIELDS)
                if new:
                    self._writer.writeheader()
            self._writer.writerows(rows)
        else:
            if self._stream is None:
                target = self._partial if self._partial is not None else self.path
                self._stream = target.open("a", encoding="utf-8")
                self._repair_last_line(target)
            self._stream.write("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
        self._stream.flush()

    def _repair_last_line(self, target: Path) -> None:
        """A line cut short by a crash gets its line break, so the next row starts on a line of its own."""
        if target.stat().st_size:
            with target.open("rb") as stream:
                stream.seek(-1, os.SEEK_END)
                if stream.read(1) != b"\n":
                    self._stream.write("\n")

    def close(self) -> None:
        """Close the file; a Parquet file is written in full (the rows it had, then the new ones)."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        if self.kind != "parquet" or self._partial is None:
            return
        if not self._partial.exists() and self.path.exists():
            return  # nothing new
        parquet = _pyarrow_parquet()
        import pyarrow as pa

        schema = pa.schema([("position", pa.int64()), ("id", pa.string()), ("status", pa.string()),
                            ("text", pa.string()), ("error", pa.string()), ("input_tokens", pa.int64()),
                            ("output_tokens", pa.int64()), ("cost", pa.float64())])
        temporary = self.path.with_name(self.path.name + ".tmp")
        with parquet.ParquetWriter(temporary, schema) as writer:
            chunk: list[dict[str, Any]] = []
            for row in self._existing_rows():
                chunk.append({name: row.get(name) for name in RESULT_FIELDS})
                if len(chunk) >= 10_000:
                    writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
                    chunk = []
            if chunk:
                writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
        os.replace(temporary, self.path)
        self._partial.unlink(missing_ok=True)

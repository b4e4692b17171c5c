"""Raw rows from JSONL, JSON, CSV, Parquet and Hugging Face datasets, each with its line number.

A reader yields `Row(line, data, error)`: `data` is a dict (or a list for header-less CSV), or
`error` is a `RowError` for a row that could not even be parsed. Nothing here knows benchmarks.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from medtune.data.fastjson import JSONDecodeError
from medtune.data.fastjson import loads as fast_loads
from medtune.errors import MedtuneError


@dataclass
class RowError(Exception):
    """A problem with one row: the field it concerns and what is wrong."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass
class Row:
    line: int
    data: Any = None
    error: RowError | None = None


def _bad_bytes(raw: bytes, err: UnicodeDecodeError) -> RowError:
    hint = "; the file is UTF-16: save it as UTF-8" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
    return RowError("encoding", f"invalid UTF-8 byte 0x{raw[err.start]:02x} at column {err.start + 1}{hint}")


def _not_utf16(path: Path, raw: bytes) -> None:
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise MedtuneError("the file is UTF-16 (its first bytes say so): save it as UTF-8", path=str(path), line=1,
                           field="encoding")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    """An object_pairs_hook: a key given twice is an error (the later value would silently win)."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        key = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise RowError("json", f"duplicate key {key!r} in one object (which value is meant?)")
    return obj


def read_jsonl(path: Path) -> Iterator[Row]:
    """One JSON object per line, streamed; blank lines, bad bytes, NUL characters, duplicate keys and
    bad JSON are row errors."""
    with open(path, "rb") as fh:
        for no, raw in enumerate(fh, start=1):
            try:
                obj = fast_loads(raw)      # the common case: a valid object (orjson checks UTF-8)
            except JSONDecodeError:
                yield _slow_row(no, raw)
                continue
            # a line holding as many `":` as its object (and the objects in it) has keys has no key twice
            if type(obj) is dict and _all_keys(obj, raw.count(b'":')) and b"\\u0000" not in raw:
                yield Row(no, obj)
            else:
                yield _slow_row(no, raw)


def _all_keys(obj: dict, separators: int) -> bool:
    """Whether an object and the objects among its values have `separators` keys in all."""
    if separators == len(obj):
        return True
    return separators == len(obj) + sum(len(v) for v in obj.values() if type(v) is dict)


def _slow_row(no: int, raw: bytes) -> Row:
    """The standard library's reading of one line: its exact error messages, BOM and NaN rules."""
    raw = raw.rstrip(b"\n").rstrip(b"\r")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return Row(no, error=_bad_bytes(raw, err))
    text = text.removeprefix("\ufeff")        # a BOM: the file's start, or where two files were concatenated
    if not text.strip():
        return Row(no, error=RowError("line", "blank line (a JSONL file has one JSON object per line)"))
    if no == 1 and text.strip() in ("[", "{"):
        return Row(no, error=RowError("json", "a JSON document over several lines, not JSON Lines: name the file "
                                              ".json, or write one object per line"))
    nul = text.find("\x00") if "\x00" in text else text.find("\\u0000")
    if nul >= 0:
        return Row(no, error=RowError("encoding", f"NUL character at column {nul + 1} (a binary file, or a "
                                                  f"broken export?)"))
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as err:
        return Row(no, error=RowError("json", f"invalid JSON: {err.msg} at column {err.colno}"))
    except RowError as err:
        return Row(no, error=err)
    except RecursionError:
        return Row(no, error=RowError("json", "nested too deeply"))
    if not isinstance(obj, dict):
        return Row(no, error=RowError("json", f"expected a JSON object, got {type(obj).__name__}"))
    return Row(no, obj)


def read_json(path: Path) -> Iterator[Row]:
    """A JSON array of objects, a {"data": [...]} wrapper, or a {key: object} mapping (PubMedQA's
    original `ori_pqal.json`); the "line" is the record's position, counted from 1."""
    raw = path.read_bytes()
    _not_utf16(path, raw)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise MedtuneError(f"invalid UTF-8 byte 0x{raw[err.start]:02x}", path=str(path), line=line,
                           field="encoding") from None
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as err:
        hint = " (JSON Lines? name the file .jsonl)" if err.msg == "Extra data" else ""
        raise MedtuneError(f"invalid JSON: {err.msg} at column {err.colno}{hint}", path=str(path),
                           line=err.lineno, field="json") from None
    except RowError as err:
        raise MedtuneError(err.message, path=str(path), field=err.field) from None
    except RecursionError:
        raise MedtuneError("nested too deeply", path=str(path), field="json") from None
    if isinstance(obj, dict) and isinstance(obj.get("data"), list):
        obj = obj["data"]
    if isinstance(obj, dict) and obj and all(isinstance(v, dict) for v in obj.values()):
        obj = [{"pubid": k, **v} for k, v in obj.items()]
    if not isinstance(obj, list):
        raise MedtuneError("expected a JSON array of records", path=str(path), line=1, field="json")
    for no, rec in enumerate(obj, start=1):
        if isinstance(rec, dict):
            yield Row(no, rec)
        else:
            yield Row(no, error=RowError("json", f"expected a JSON object, got {type(rec).__name__}"))


def read_csv(path: Path, header: bool | None = None) -> Iterator[Row]:
    """CSV rows (quoted newlines allowed). With a header row, rows are dicts; without, lists, and every
    row has as many cells as the first. A quote left open stops the file at the line it opens.

    `header=None` guesses: MMLU-style files (last cell a single answer letter) have none.
    """
    raw = path.read_bytes()
    _not_utf16(path, raw)
    text = raw.decode("utf-8", errors="surrogateescape")
    if text.startswith("\ufeff"):
        text = text[1:]
    columns: list[str] | None = None
    width, where = 0, ""
    for line, cells, end in _csv_rows(path, csv.reader(io.StringIO(text, newline=""), strict=True)):
        bad = next((c for c in cells if any("\udc80" <= ch <= "\udcff" for ch in c)), None)
        if bad is not None:
            pos = next(i for i, ch in enumerate(bad) if "\udc80" <= ch <= "\udcff")
            yield Row(line, error=RowError("encoding", f"invalid UTF-8 byte 0x{ord(bad[pos]) - 0xdc00:02x}"))
            continue
        if not cells or not any(c.strip() for c in cells):
            yield Row(line, error=RowError("line", "blank line"))
            continue
        cells[0] = cells[0].removeprefix("\ufeff")   # where two files were concatenated
        if not width:
            _comma_separated(path, cells, line)
            header = not _looks_like_mmlu_row(cells) if header is None else header
            width, where = len(cells), "as in the header" if header else f"as on line {line}"
            if header:
                columns = _header(path, cells)
                continue
        if end > line and any(part.count(",") >= width - 1 for c in cells for part in c.split("\n")[1:]):
            raise MedtuneError(f"this row runs from line {line} to line {end} and a cell holds lines that look like "
                               f"whole rows: is a quote left open?", path=str(path), line=line, field="csv")
        if len(cells) != width:
            if end > line:  # a row over several lines with the wrong count: a quote swallowed rows
                raise MedtuneError(f"expected {width} cells {where}, got {len(cells)}: this row runs from line "
                                   f"{line} to line {end}; is a quote left open?", path=str(path), line=line,
                                   field="columns")
            hint = " (a comma in a text that is not quoted?)" if len(cells) > width else ""
            yield Row(line, error=RowError("columns", f"expected {width} cells {where}, got {len(cells)}{hint}"))
            continue
        yield Row(line, dict(zip(columns, cells)) if columns is not None else cells)


def _comma_separated(path: Path, cells: list[str], line: int) -> None:
    """A first row of one cell holding ';' or tabs is a file exported with another separator."""
    sep = next((s for s in (";", "\t", "|") if len(cells) == 1 and s in cells[0]), None)
    if sep is not None:
        raise MedtuneError(f"one cell per row, split by {sep!r}: medtune reads comma-separated files; export "
                           f"the table with commas", path=str(path), line=line, field="csv")


def _csv_rows(path: Path, reader: Any) -> Iterator[tuple[int, list[str], int]]:
    """(first line, cells, last line) of each CSV row; a malformed quote is a MedtuneError at its row."""
    start = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            msg = str(err)
            if "end of data" in msg:
                msg = "a quote opened on this line is never closed"
            elif "field larger" in msg:
                msg = f"a cell of more than {csv.field_size_limit():,} characters (a quote left open?)"
            elif "expected after" in msg:
                msg += " (a quote inside a quoted cell is written twice: \"\")"
            raise MedtuneError(f"malformed CSV: {msg}", path=str(path), line=start, field="csv") from None
        yield start, cells, reader.line_num
        start = reader.line_num + 1


def _header(path: Path, cells: list[str]) -> list[str]:
    """The column names of a header row; a name given twice is a MedtuneError."""
    columns = [c.strip() for c in cells]
    for i, name in enumerate(columns):
        if name in columns[:i]:
            raise MedtuneError(f"column {name!r} appears twice in the header (columns {columns.index(name) + 1} "
                               f"and {i + 1})", path=str(path), line=1, field="columns")
    return columns


def _looks_like_mmlu_row(cells: list[str]) -> bool:
    return len(cells) >= 4 and len(cells[-1].strip()) == 1 and cells[-1].strip().upper() in "ABCDEFGHIJ"


def read_parquet(path: Path) -> Iterator[Row]:
    """Parquet rows as dicts, one record batch at a time; the "line" is the row number, from 1."""
    from medtune.backend import need

    pq = need("pyarrow.parquet", "reading Parquet files", extra="parquet", path=str(path))

    try:
        pf = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types for a damaged file
        raise MedtuneError(f"cannot read Parquet: {err}", path=str(path)) from None
    no = 0
    try:
        for batch in pf.iter_batches(batch_size=8192):
            for rec in batch.to_pylist():
                no += 1
                yield Row(no, rec)
    except Exception as err:  # a damaged page or column: pyarrow's several types, named at the row it stops
        raise MedtuneError(f"cannot read Parquet: {err}", path=str(path), line=no + 1) from None


def hf_spec(spec: str) -> tuple[str, str | None, str | None]:
    """`hf:ID[:CONFIG]:SPLIT` as (ID, CONFIG, SPLIT)."""
    parts = spec[3:].split(":")
    if len(parts) == 1:
        return parts[0], None, None
    if len(parts) == 2:
        return parts[0], None, parts[1]
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    raise MedtuneError("expected hf:DATASET[:CONFIG]:SPLIT, e.g. hf:openlifescienceai/medmcqa:validation",
                       path=spec)


def open_hf(spec: str) -> Any:
    """The `datasets.Dataset` of a spec (from the local Hub cache when offline)."""
    from medtune.backend import need

    name, config, split = hf_spec(spec)
    datasets = need("datasets", "hf: data sources", path=spec)

    try:
        return datasets.load_dataset(name, config, split=split or "train")
    except Exception as err:
        msg = " ".join(str(err).split())
        raise MedtuneError(f"cannot load the dataset: {type(err).__name__}: {msg[:300]}", path=spec) from None


def read_hf(spec: str, dataset: Any = None) -> Iterator[Row]:
    """Rows of a Hugging Face dataset, `hf:ID[:CONFIG]:SPLIT` (ID may also be a local folder);
    the "line" is the row index + 1. Rows are read a batch at a time from the Arrow table."""
    ds = dataset if dataset is not None else open_hf(spec)
    no = 0
    if not hasattr(ds, "iter"):  # an iterable of dicts (a streaming dataset, a list in tests)
        for rec in ds:
            no += 1
            yield Row(no, dict(rec))
        return
    for batch in ds.iter(batch_size=8192):
        keys = list(batch)
        for values in zip(*(batch[k] for k in keys)):
            no += 1
            yield Row(no, dict(zip(keys, values)))


READERS = {".jsonl": read_jsonl, ".json": read_json, ".csv": read_csv, ".parquet": read_parquet}

"""`load_benchmark`: any supported source (files, folders, `hf:` datasets, built-in names) into
checked MCQItems, served from the content-keyed cache when the same sources were read before."""

from __future__ import annotations

import gc
import glob
import os
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from medtune.data import formats as F
from medtune.data.benchmarks import RESOURCES, builtin_names  # noqa: F401 (RESOURCES: older imports)
from medtune.data.cache import code_digest, content_key, load_cached, store_cached
from medtune.data import convert
from medtune.data.schema import MCQItem
from medtune.errors import MedtuneError, did_you_mean
from medtune.io import sha256_file

BUILTIN = {name: Path(spec) for name, spec in builtin_names().items() if not spec.startswith("hf:")}
FOLDER_SUFFIXES = (".jsonl", ".csv", ".parquet")
CACHE_MIN_BYTES = 16 << 20     # smaller sources load in well under a second: no entry, no note
CACHE_MIN_ROWS = 20_000        # the same for hf: datasets, by rows
CODE_FILES = tuple(f"data/{f}" for f in ("readers.py", "draft.py", "formats.py", "pubmedqa.py", "validate.py",
                                        "convert.py", "schema.py", "sources.py", "fastjson.py", "fastrows.py"))


@dataclass
class LoadOptions:
    """How to read a source; the CLI flags of the same names fill it."""

    format: str | None = None          # None: detect from the fields
    cop_base: int | None = None        # 0 or 1 for index answers (MedMCQA `cop`); None: detect
    on_bad_row: str = "error"          # "error": stop at the first bad row; "skip": count and go on
    columns: dict[str, str] | None = None  # generic format: question=, options=, answer=, ...
    split: str | None = None           # keep only this official split (PubMedQA: test, train_dev)
    cache: bool | None = None          # reuse loaded records: None = for sources of 16 MiB or more

    def __post_init__(self) -> None:
        if self.format is not None and self.format not in F.FORMATS:
            raise MedtuneError(f"unknown format {self.format!r}{did_you_mean(self.format, F.FORMATS)}; "
                               f"choose one of {', '.join(F.FORMATS)}", field="--format")
        if self.cop_base not in (None, 0, 1):
            raise MedtuneError(f"must be 0 or 1, got {self.cop_base!r}", field="--cop-base")
        if self.on_bad_row not in ("error", "skip"):
            raise MedtuneError(f"must be error or skip, got {self.on_bad_row!r}", field="--on-bad-row")
        if self.columns is not None:
            unknown = sorted(set(self.columns) - set(F.GENERIC_KEYS))
            if unknown:
                raise MedtuneError(f"unknown key {unknown[0]!r}{did_you_mean(unknown[0], F.GENERIC_KEYS)}; "
                                   f"keys are {', '.join(F.GENERIC_KEYS)}", field="--map")
            missing = [k for k in ("question", "options", "answer") if k not in self.columns]
            if missing:
                raise MedtuneError(f"the generic format needs {', '.join(missing)}=COLUMN", field="--map")
            if self.format is None:
                self.format = "generic"
        elif self.format == "generic":
            raise MedtuneError("--format generic needs --map question=COL options=COL1,COL2,... answer=COL",
                               field="--map")


@dataclass
class SourceInfo:
    path: str
    format: str
    sha256: str | None
    rows: int
    records: int
    skipped: int
    answer_base: int | None = None
    size: int | None = None            # bytes, for files


@dataclass
class LoadReport:
    """What was read: per source, its hash, format and counts, and every skipped row."""

    sources: list[SourceInfo] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    split: str | None = None
    n_records: int = 0
    cached: str | None = None          # the cache entry the records came from, when they did

    def to_dict(self) -> dict:
        return {"sources": [asdict(s) for s in self.sources], "n_records": self.n_records,
                "skipped_rows": len(self.skipped), "skipped_examples": self.skipped[:20],
                "split": self.split, "from_cache": self.cached is not None}


def expand_sources(specs: str | Sequence[str]) -> list[str]:
    """Files, folders (their .jsonl/.csv/.parquet files), globs, built-in names and hf: specs."""
    if isinstance(specs, str):
        specs = [specs]
    out: list[str] = []
    names = builtin_names()
    for spec in specs:
        if spec.startswith("hf:"):
            out.append(spec)
        elif spec in names:
            out.append(names[spec])
        elif any(ch in spec for ch in "*?["):
            found = sorted(glob.glob(spec))
            if not found:
                raise MedtuneError("no file matches this pattern", path=spec)
            out.extend(found)
        elif Path(spec).is_dir():
            found = sorted(str(p) for p in Path(spec).iterdir() if p.suffix in FOLDER_SUFFIXES)
            if not found:
                raise MedtuneError(f"no {', '.join(FOLDER_SUFFIXES)} files in this folder", path=spec)
            out.extend(found)
        elif Path(spec).is_file():
            out.append(spec)
        elif os.path.lexists(spec):
            what = "a symbolic link to nothing (its target is missing, or a loop)" if os.path.islink(spec) \
                else "not a regular file (a pipe, a device or a socket)"
            raise MedtuneError(what, path=spec)
        else:
            hint = did_you_mean(spec, names)
            raise MedtuneError(f"no such file or folder{hint}", path=spec)
    return out


def load_benchmark(specs: str | Sequence[str], options: LoadOptions | None = None,
                   ) -> tuple[list[MCQItem], LoadReport]:
    """Load and check every record of the sources; raise MedtuneError on the first bad row
    (or skip and count bad rows with `on_bad_row="skip"`). Records of unchanged sources come
    from the cache (`report.cached` names the entry; a note on stderr says so)."""
    options = options or LoadOptions()
    paths = expand_sources(specs)
    try:
        return _load(paths, options)
    except OSError as err:  # permission denied, an I/O error, a full disk for the cache: one line, no traceback
        where = err.filename if err.filename is not None else (paths[0] if len(paths) == 1 else None)
        raise MedtuneError(f"cannot read: {err.strerror or err}", path=where) from None


def _load(paths: list[str], options: LoadOptions) -> tuple[list[MCQItem], LoadReport]:
    """`load_benchmark` after the sources are expanded."""
    hub = {p: convert.open_hf(p) for p in paths if p.startswith("hf:")}   # Arrow files, memory-mapped
    shas: dict[str, str] = {}
    key = _cache_key(paths, options, hub, shas)
    if key is not None:
        hit = _unpack(load_cached("items", key))
        if hit is not None:
            items, report = hit
            report.cached = key
            print(f"medtune: {len(items)} records from the cache (sources unchanged since they were "
                  f"last read; {key[:12]})", file=sys.stderr)
            return items, report
    report = LoadReport(split=options.split)
    items: list[MCQItem] = []
    seen: dict[str, tuple[str, int]] = {}
    was = gc.isenabled()
    gc.disable()  # records are not cyclic; generational collections over 100k+ new objects only cost
    try:
        for path in paths:
            info = SourceInfo(path=path, format="", sha256=shas.get(path), rows=0, records=0, skipped=0,
                              size=None if path.startswith("hf:") else os.path.getsize(path))
            report.sources.append(info)
            items.extend(convert.load_file(path, options, report, seen, info, hub.get(path)))
    finally:
        if was:
            gc.enable()
    if options.split is not None:
        present = sorted({it.split for it in items if it.split})
        items = [it for it in items if it.split == options.split]
        if not items:
            where = f"splits present: {', '.join(present)}" if present else "these sources name no splits"
            raise MedtuneError(f"no records in split {options.split!r} ({where})", field="--split")
    report.n_records = len(items)
    if key is not None:
        _store("items", key, _pack(items, report))
    return items, report


def _store(kind: str, key: str, obj) -> None:
    """Store a cache entry; a cache that cannot be written (read-only home, full disk), or records whose
    `meta` JSON cannot hold (bytes, dates from a Parquet column), is skipped."""
    try:
        store_cached(kind, key, obj)
    except (OSError, TypeError, ValueError):
        pass


_FIELDS = [f for f in MCQItem.__dataclass_fields__]   # a record is cached as the list of its fields


def _pack(items: list[MCQItem], report: LoadReport) -> dict:
    """Records and report as plain JSON values (a cache entry that cannot run code when read)."""
    return {"fields": _FIELDS, "report": asdict(report),
            "items": [[getattr(it, f) for f in _FIELDS] for it in items]}


def _unpack(value) -> tuple[list[MCQItem], LoadReport] | None:
    """The records and report of a cache entry, or None when it is not one this medtune wrote."""
    if not isinstance(value, dict) or value.get("fields") != _FIELDS:
        return None
    was = gc.isenabled()
    gc.disable()  # 180k+ new records, nothing cyclic: generational collections would double the time
    try:
        rep = value["report"]
        report = LoadReport(**{**rep, "sources": [SourceInfo(**s) for s in rep["sources"]]})
        intern = sys.intern
        items = [MCQItem(i, q, tuple(o), a, s and intern(s), t and intern(t), e, c, src and intern(src), sp, m)
                 for i, q, o, a, s, t, e, c, src, sp, m in value["items"]]
    except (TypeError, ValueError, KeyError):
        return None
    finally:
        if was:
            gc.enable()
    if not all(type(it.answer_index) is int and 0 <= it.answer_index < len(it.options) for it in items):
        return None
    return items, report


def _file_sha(path: str, st: os.stat_result) -> str:
    """A file's sha256, remembered per (path, size, mtime, inode) so an unchanged file is not reread."""
    stat_key = content_key("stat", os.path.realpath(path), st.st_size, st.st_mtime_ns, st.st_ino)
    known = load_cached("file-sha256", stat_key)
    if isinstance(known, str) and re.fullmatch(r"[0-9a-f]{64}", known):
        return known
    digest = sha256_file(path)
    _store("file-sha256", stat_key, digest)
    return digest


def _cache_key(paths: list[str], options: LoadOptions, hub: dict, shas: dict[str, str]) -> str | None:
    """The key of these sources read with these options, or None when the cache is not used.
    Files are known by their sha256; hf: datasets by the fingerprint `datasets` gives their Arrow data."""
    if options.cache is False:
        return None
    parts, size, rows = [], 0, 0
    for path in paths:
        if path.startswith("hf:"):
            fingerprint = getattr(hub[path], "_fingerprint", None)
            if not fingerprint:
                return None
            parts.append([path, fingerprint])
            rows += len(hub[path])
            continue
        st = os.stat(path)
        size += st.st_size
        parts.append([path, st])
    if options.cache is None and size < CACHE_MIN_BYTES and rows < CACHE_MIN_ROWS:
        return None
    for part in parts:
        if isinstance(part[1], os.stat_result):
            path, st = part
            truth = Path(path).with_name("test_ground_truth.json")    # PubMedQA's split comes from it
            shas[path] = _file_sha(path, st)
            part[1:] = [shas[path], _file_sha(str(truth), truth.stat()) if truth.is_file() else None]
    opts = {k: v for k, v in asdict(options).items() if k != "cache"}
    return content_key("items", code_digest(*CODE_FILES), parts, opts)

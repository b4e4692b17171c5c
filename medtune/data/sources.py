"""`load_benchmark`: any supported source (files, folders, `hf:` datasets) into checked MCQItems."""

from __future__ import annotations

import glob
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from medtune.data import formats as F
from medtune.data.readers import READERS, RowError, read_hf
from medtune.data.schema import MCQItem
from medtune.data.validate import check_draft, resolve_base
from medtune.errors import MedtuneError, did_you_mean
from medtune.io import sha256_file

RESOURCES = Path(__file__).resolve().parent.parent / "resources" / "data"
BUILTIN = {"medmcqa-dev": RESOURCES / "medmcqa_dev.jsonl"}
FOLDER_SUFFIXES = (".jsonl", ".csv", ".parquet")


@dataclass
class LoadOptions:
    """How to read a source; the CLI flags of the same names fill it."""

    format: str | None = None          # None: detect from the fields
    cop_base: int | None = None        # 0 or 1 for index answers (MedMCQA `cop`); None: detect
    on_bad_row: str = "error"          # "error": stop at the first bad row; "skip": count and go on
    columns: dict[str, str] | None = None  # generic format: question=, options=, answer=, ...
    split: str | None = None           # keep only this official split (PubMedQA: test, train_dev)

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


@dataclass
class LoadReport:
    """What was read: per source, its hash, format and counts, and every skipped row."""

    sources: list[SourceInfo] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    split: str | None = None
    n_records: int = 0

    def to_dict(self) -> dict:
        return {"sources": [asdict(s) for s in self.sources], "n_records": self.n_records,
                "skipped_rows": len(self.skipped), "skipped_examples": self.skipped[:20],
                "split": self.split}


def expand_sources(specs: str | Sequence[str]) -> list[str]:
    """Files, folders (their .jsonl/.csv/.parquet files), globs, built-in names and hf: specs."""
    if isinstance(specs, str):
        specs = [specs]
    out: list[str] = []
    for spec in specs:
        if spec.startswith("hf:"):
            out.append(spec)
        elif spec in BUILTIN:
            out.append(str(BUILTIN[spec]))
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
        else:
            hint = did_you_mean(spec, BUILTIN)
            raise MedtuneError(f"no such file or folder{hint}", path=spec)
    return out


def load_benchmark(specs: str | Sequence[str], options: LoadOptions | None = None,
                   ) -> tuple[list[MCQItem], LoadReport]:
    """Load and check every record of the sources; raise MedtuneError on the first bad row
    (or skip and count bad rows with `on_bad_row="skip"`)."""
    options = options or LoadOptions()
    report = LoadReport(split=options.split)
    items: list[MCQItem] = []
    seen: dict[str, tuple[str, int]] = {}
    for path in expand_sources(specs):
        items.extend(_load_one(path, options, report, seen))
    if options.split is not None:
        present = sorted({it.split for it in items if it.split})
        items = [it for it in items if it.split == options.split]
        if not items:
            where = f"splits present: {', '.join(present)}" if present else "these sources name no splits"
            raise MedtuneError(f"no records in split {options.split!r} ({where})", field="--split")
    report.n_records = len(items)
    return items, report


def _load_one(path: str, options: LoadOptions, report: LoadReport,
              seen: dict[str, tuple[str, int]]) -> list[MCQItem]:
    if path.startswith("hf:"):
        rows, digest = read_hf(path), None
    else:
        suffix = Path(path).suffix.lower()
        reader = READERS.get(suffix)
        if reader is None:
            raise MedtuneError(f"unsupported file type {suffix or '(none)'!r}; medtune reads "
                               f"{', '.join(READERS)} files and hf: datasets", path=path)
        rows, digest = reader(Path(path)), sha256_file(path)
    rows = list(rows)
    info = SourceInfo(path=path, format="", sha256=digest, rows=len(rows), records=0, skipped=0)
    report.sources.append(info)
    if not rows:
        raise MedtuneError("no records (the file is empty)", path=path)

    fmt = options.format
    if fmt is None:
        first = next((r for r in rows if r.error is None), None)
        fmt = F.detect_format(first.data) if first else None
        if fmt is None:
            line = first.line if first else rows[0].line
            fields = ", ".join(sorted(first.data)) if first and isinstance(first.data, dict) else "none"
            if first is None:  # every row is broken: report the first problem itself
                bad = rows[0]
                raise MedtuneError(bad.error.message, path=path, line=bad.line, field=bad.error.field)
            raise MedtuneError(f"cannot tell the format from the fields ({fields}); pass --format "
                               f"{'|'.join(F.FORMATS)}, or --map question=COL options=COL1,COL2 answer=COL",
                               path=path, line=line, field="format")
    info.format = fmt
    ctx = _context(path, fmt, options)
    converter = F.FORMATS[fmt]

    def bad(line: int, err: RowError) -> None:
        if options.on_bad_row == "error":
            raise MedtuneError(err.message, path=path, line=line, field=err.field)
        report.skipped.append(f"{path}:{line}: {err}")
        info.skipped += 1

    drafts: list[F.Draft] = []
    for row in rows:
        if row.error is not None:
            bad(row.line, row.error)
            continue
        try:
            drafts.append(converter(row.data, row.line, ctx))
        except RowError as err:
            bad(row.line, err)

    pending = [d for d in drafts if d.answer is None and d.raw_index is not None]
    if pending:
        info.answer_base = base = _answer_base(pending, options.cop_base, path)
        kept = []
        for d in drafts:
            try:
                if d.answer is None and d.raw_index is not None:
                    resolve_base(d, base)
                kept.append(d)
            except RowError as err:
                bad(d.line, err)
        drafts = kept

    prefix = f"mmlu-{ctx['subject']}" if fmt == "mmlu" else fmt
    out: list[MCQItem] = []
    for d in drafts:
        try:
            item = check_draft(d, source=_source_name(path, fmt, ctx), id_prefix=prefix)
            if item.id in seen:
                where, first_line = seen[item.id]
                at = f"line {first_line}" if where == path else f"{where}:{first_line}"
                if d.id is None:
                    raise RowError("question", f"duplicate question: same text and options as {at}")
                raise RowError("id", f"duplicate id {item.id!r} (first on {at})")
        except RowError as err:
            bad(d.line, err)
            continue
        seen[item.id] = (path, d.line)
        out.append(item)
    info.records = len(out)
    if not out:
        raise MedtuneError(f"no valid records ({info.skipped} bad rows skipped)", path=path)
    return out


def _answer_base(drafts: list[F.Draft], forced: int | None, path: str) -> int:
    """0 or 1 for index answers: forced by the user, or read off the data when unambiguous."""
    if forced is not None:
        return forced
    fld = drafts[0].answer_field
    if any(d.raw_index == 0 for d in drafts):
        return 0
    if any(d.raw_index == len(d.options) for d in drafts):
        return 1
    values = sorted({d.raw_index for d in drafts})
    shown = ", ".join(map(str, values[:6]))
    raise MedtuneError(f"cannot tell whether answers count from 0 (the Hugging Face copy of MedMCQA) or "
                       f"from 1 (the original release): values seen are {shown}, with no 0 and no value "
                       f"equal to the number of options; pass --cop-base 0 or --cop-base 1",
                       path=path, field=fld)


def _context(path: str, fmt: str, options: LoadOptions) -> dict:
    ctx: dict = {"columns": options.columns}
    if fmt == "mmlu":
        stem = Path(path).stem
        for suffix in ("_test", "_val", "_dev", "_train"):
            stem = stem.removesuffix(suffix)
        ctx["subject"] = stem
    if fmt == "pubmedqa" and not path.startswith("hf:"):
        truth = Path(path).with_name("test_ground_truth.json")
        if truth.is_file():
            try:
                ctx["pubmedqa_test_ids"] = set(json.loads(truth.read_text("utf-8")))
            except (ValueError, UnicodeDecodeError):
                raise MedtuneError("invalid JSON in PubMedQA's test ground truth", path=str(truth)) from None
    return ctx


def _source_name(path: str, fmt: str, ctx: dict) -> str:
    return fmt if fmt != "mmlu" else f"mmlu/{ctx['subject']}"


"""One source's rows into checked MCQItems, in one streaming pass.

Every row is parsed, converted and checked as it is read; nothing but the finished records is
kept. Row errors that do not depend on the answer base (bad JSON, a missing field, an empty option,
a duplicate id, an answer index valid under neither base) stop the load at their line, before any
question about the file as a whole. Only then is the base of index answers (MedMCQA's `cop`)
decided — forced by the user, or read off the data — and the records counting from 1 are rebased.
"""

from __future__ import annotations

from itertools import chain
from pathlib import Path
from typing import Any, Iterator

from medtune.data import formats as F
from medtune.data.fastrows import FAST
from medtune.data.readers import READERS, Row, RowError, hf_spec, open_hf, read_hf
from medtune.data.schema import MCQItem
from medtune.data.validate import check_draft, rebase
from medtune.errors import MedtuneError
from medtune.io import sha256_file


class _Sink:
    """Where bad rows go: an error at once (`error`), or a count and a note (`skip`)."""

    def __init__(self, path: str, options: Any, report: Any, info: Any) -> None:
        self.path, self.skip, self.report, self.info = path, options.on_bad_row == "skip", report, info
        self.notes: list[tuple[int, str]] = []

    def bad(self, line: int, err: RowError) -> None:
        if not self.skip:
            if self.path.startswith("hf:"):
                split = hf_spec(self.path)[2] or "train"
                raise MedtuneError(f"{err.message} (split {split!r}, row index {line - 1}); --on-bad-row skip "
                                   f"continues past bad rows and records how many were skipped",
                                   path=self.path, field=err.field)
            raise MedtuneError(err.message, path=self.path, line=line, field=err.field)
        self.notes.append((line, f"{self.path}:{line}: {err}"))
        self.info.skipped += 1

    def close(self) -> None:
        self.report.skipped.extend(note for _, note in sorted(self.notes))


def open_rows(path: str, dataset: Any = None, sha256: str | None = None) -> tuple[Iterator[Row], str | None, Any]:
    """A source's rows, its sha256 (None for hf:) and, for hf:, the dataset object (opened here
    unless given)."""
    if path.startswith("hf:"):
        ds = dataset if dataset is not None else open_hf(path)
        return read_hf(path, ds), None, ds
    suffix = Path(path).suffix.lower()
    reader = READERS.get(suffix)
    if reader is None:
        raise MedtuneError(f"unsupported file type {suffix or '(none)'!r}; medtune reads "
                           f"{', '.join(READERS)} files and hf: datasets", path=path)
    return reader(Path(path)), sha256 or sha256_file(path), None


def _detect(rows: Iterator[Row], fmt: str | None, path: str) -> tuple[str, Iterator[Row]]:
    """The format (given or guessed from the first readable row) and the rows, none lost."""
    head: list[Row] = []
    first = None
    for row in rows:
        head.append(row)
        if row.error is None:
            first = row
            break
    if not head:
        raise MedtuneError("no records (the file is empty, or holds only a header row)", path=path)
    if fmt is None:
        if first is None:  # every row is broken: report the first problem itself
            raise MedtuneError(head[0].error.message, path=path, line=head[0].line, field=head[0].error.field)
        fmt = F.detect_format(first.data)
        if fmt is None:
            fields = ", ".join(sorted(first.data)) if isinstance(first.data, dict) else "none"
            raise MedtuneError(f"cannot tell the format from the fields ({fields}); pass --format "
                               f"{'|'.join(F.FORMATS)}, or --map question=COL options=COL1,COL2 answer=COL",
                               path=path, line=first.line, field="format")
    return fmt, chain(head, rows)


def load_file(path: str, options: Any, report: Any, seen: dict[str, tuple[str, int]], info: Any,
              dataset: Any = None) -> list[MCQItem]:
    """Read, convert and check one source; `seen` maps ids to where they first appeared."""
    rows, info.sha256, _ = open_rows(path, dataset, info.sha256)
    fmt, rows = _detect(rows, options.format, path)
    info.format = fmt
    ctx = _context(path, fmt, options)
    converter, fast, source = F.FORMATS[fmt], FAST.get(fmt), _source_name(fmt, ctx)
    prefix = f"mmlu-{ctx['subject']}" if ctx.get("subject") else fmt
    sink = _Sink(path, options, report, info)
    out: list[MCQItem] = []
    pending: list[tuple[int, int, int, str]] = []   # (position in out, line, n options, field)
    for row in rows:
        info.rows += 1
        if row.error is not None:
            sink.bad(row.line, row.error)
            continue
        try:
            got = fast(row.data, source) if fast is not None else None
            if got is None:
                item, field, given_id = _checked(converter, row, ctx, source, prefix)
            else:
                (item, field), given_id = got, True
            first = seen.get(item.id)
            if first is not None:
                at = f"line {first[1]}" if first[0] == path else f"{first[0]}:{first[1]}"
                if not given_id:
                    raise RowError("question", f"duplicate question: same text and options as {at}")
                raise RowError("id", f"duplicate id {item.id!r} (first on {at})")
            if field is not None and options.cop_base is not None:
                object.__setattr__(item, "answer_index",  # the record is not shared yet
                                   rebase(item.answer_index, len(item.options), options.cop_base, field))
                field, info.answer_base = None, options.cop_base
        except RowError as err:
            sink.bad(row.line, err)
            continue
        seen[item.id] = (path, row.line)
        if field is not None:
            pending.append((len(out), row.line, len(item.options), field))
        out.append(item)
    if pending:
        out = _apply_base(out, pending, options.cop_base, path, sink, info)
    sink.close()
    info.records = len(out)
    if not out:
        raise MedtuneError(f"no valid records ({info.skipped} bad rows skipped)", path=path)
    return out


def _checked(converter: F.Converter, row: Row, ctx: dict, source: str, prefix: str
             ) -> tuple[MCQItem, str | None, bool]:
    """The checked path: the record, the answer field if its base is still open, whether the row had an id."""
    draft = converter(row.data, row.line, ctx)
    undecided = draft.answer is None and draft.raw_index is not None
    item = check_draft(draft, source=source, id_prefix=prefix)
    return item, draft.answer_field if undecided else None, draft.id is not None


def _apply_base(out: list[MCQItem], pending: list[tuple[int, int, int, str]], forced: int | None,
                path: str, sink: _Sink, info: Any) -> list[MCQItem]:
    """Decide the file's answer base, rebase the records that wait for it, drop those out of range."""
    info.answer_base = base = _answer_base(out, pending, forced, path)
    dropped = set()
    for pos, line, n, fld in pending:
        item = out[pos]
        try:
            object.__setattr__(item, "answer_index", rebase(item.answer_index, n, base, fld))
        except RowError as err:
            sink.bad(line, err)
            dropped.add(pos)
    return [it for k, it in enumerate(out) if k not in dropped] if dropped else out


def _answer_base(out: list[MCQItem], pending: list[tuple[int, int, int, str]], forced: int | None,
                 path: str) -> int:
    """0 or 1 for index answers: forced by the user, or read off the data when unambiguous."""
    if forced is not None:
        return forced
    raw = [out[pos].answer_index for pos, _, _, _ in pending]
    zero = next((k for k, r in enumerate(raw) if r == 0), None)
    top = next((k for k, r in enumerate(raw) if r == pending[k][2]), None)
    if zero is not None and top is not None:  # both bases in one file: every answer is in doubt, in every mode
        first, later = sorted((zero, top))
        _, line, n, fld = pending[later]
        _, line0, _, _ = pending[first]
        raise MedtuneError(f"answer {raw[later]} counts from {1 if later == top else 0}, but line {line0} has "
                           f"{fld} {raw[first]}, which counts from {1 if first == top else 0} ({n} options): one "
                           f"file has one base; fix the rows that disagree, or pass --cop-base 0 or --cop-base 1 "
                           f"(rows that disagree are then bad rows)", path=path, line=line, field=fld)
    if zero is not None:
        return 0
    if top is not None:
        return 1
    values = sorted(set(raw))
    _, line, n, fld = pending[0]
    shown = ", ".join(map(str, values[:6])) + (", ..." if len(values) > 6 else "")
    raise MedtuneError(f"cannot tell whether answers count from 0 (the Hugging Face copy of MedMCQA) or "
                       f"from 1 (the original release): none of the {len(pending)} answers decides it (no 0 "
                       f"and no value equal to the number of options; values seen are {shown}; e.g. line "
                       f"{line}: {fld} {raw[0]} with {n} options); pass --cop-base 0 or --cop-base 1",
                       path=path, field=fld)


def _context(path: str, fmt: str, options: Any) -> dict:
    """What the converter needs besides the row: the column mapping, and what the format reads per file."""
    hook = F.CONTEXTS.get(fmt)
    return {"columns": options.columns, **(hook(path) if hook is not None else {})}


def _source_name(fmt: str, ctx: dict) -> str:
    return f"mmlu/{ctx['subject']}" if ctx.get("subject") else fmt

"""Atomic file writes and content hashes."""

from __future__ import annotations

import hashlib
import json
import contextlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, Iterable, Iterator


def cache_dir() -> Path:
    """medtune's cache: $MEDTUNE_CACHE, else $XDG_CACHE_HOME/medtune, else ~/.cache/medtune."""
    if os.environ.get("MEDTUNE_CACHE"):
        return Path(os.environ["MEDTUNE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "medtune"


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write text to `path` through a temp file in the same folder and an atomic rename."""
    with atomic_open(path, "w") as fh:
        fh.write(text)
    return Path(path)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", buffering: int = -1) -> Iterator[Any]:
    """A file to write (text "w" in UTF-8, or "wb") that appears at `path` only when the block succeeds:
    a temp file in the same folder, flushed, fsynced and renamed over `path`; removed on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, buffering=buffering, encoding=None if "b" in mode else "utf-8") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_savefig(fig: Any, path: str | os.PathLike, **kwargs: Any) -> Path:
    """Save a matplotlib figure through a temp file and an atomic rename, then close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, **kwargs)
    plt.close(fig)
    tmp.replace(path)
    return path


def load_json(path: str | os.PathLike, missing: str = "missing") -> Any:
    """JSON from a file; a missing file or bad JSON is a one-line MedtuneError naming the file."""
    from medtune.errors import MedtuneError

    try:
        return json.loads(Path(path).read_text("utf-8"))
    except FileNotFoundError:
        raise MedtuneError(missing, path=str(path)) from None
    except ValueError as err:
        raise MedtuneError(f"invalid JSON: {err}", path=str(path), field="json") from None


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write `obj` as indented JSON, atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def atomic_write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> Path:
    """Write one JSON object per line, atomically."""
    return atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


MARKER = ".medtune"  # written into every folder medtune makes whole; only such folders are ever replaced


def mark_folder(folder: str | os.PathLike, made_by: str = "medtune") -> Path:
    """Create `folder` (if needed) and write medtune's marker file into it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text(json.dumps({"made_by": made_by}) + "\n", encoding="utf-8")
    return folder


def check_replaceable(folder: str | os.PathLike, field: str | None = None) -> None:
    """A one-line MedtuneError unless `folder` is absent, empty, or a folder medtune made (it has the marker)."""
    from medtune.errors import MedtuneError

    folder = Path(folder)
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise MedtuneError("is not a folder medtune made (a file or a link); choose another folder", path=str(folder),
                           field=field)
    if folder.is_dir() and not (folder / MARKER).is_file() and any(folder.iterdir()):
        raise MedtuneError(f"is not empty and was not made by medtune (no {MARKER} file): medtune replaces only "
                           "folders it made; empty it, or choose another folder", path=str(folder), field=field)


def check_apart(folder: str | os.PathLike, keep: Iterable[str | os.PathLike], field: str | None = None) -> None:
    """A one-line MedtuneError when replacing `folder` would delete one of the folders in `keep`."""
    from medtune.errors import MedtuneError

    target = Path(folder).resolve()
    for k in keep:
        k = Path(k).resolve()
        if target == k or target in k.parents:
            raise MedtuneError(f"would replace {k}, which this command reads; choose another folder",
                               path=str(folder), field=field)


def remove_made_folder(folder: str | os.PathLike, field: str | None = None) -> None:
    """Delete `folder` when medtune made it (check_replaceable); an empty or absent one is left as it is."""
    folder = Path(folder)
    check_replaceable(folder, field)
    if (folder / MARKER).is_file():
        shutil.rmtree(folder)


@contextlib.contextmanager
def replace_dir(target: str | os.PathLike, field: str | None = None) -> Iterator[Path]:
    """Yield a staging folder beside `target`; when the block succeeds, it replaces `target` whole and carries
    medtune's marker. A `target` medtune did not make is refused before anything is written (check_replaceable).

    If the block fails, `target` (an earlier result) is left as it was and the staging folder removed."""
    target = Path(target)
    check_replaceable(target, field)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    staging.mkdir()
    try:
        yield staging
        mark_folder(staging)
        check_replaceable(target, field)  # again: the block may have run for minutes
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_tree(folder: str | os.PathLike, patterns: tuple[str, ...] = ("*.safetensors", "*.bin", "*.json")) -> str:
    """One sha256 over the named files of a folder (names and contents, sorted)."""
    folder = Path(folder)
    h = hashlib.sha256()
    files = sorted({p for pat in patterns for p in folder.glob(pat) if p.is_file()})
    for p in files:
        h.update(p.name.encode())
        h.update(sha256_file(p).encode())
    return h.hexdigest()

"""Atomic file writes and content hashes."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator


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


STALE_TEMP_S = 3600  # a temporary this old was left by a write that never finished (a killed process)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", buffering: int = -1) -> Iterator[Any]:
    """A file to write (text "w" in UTF-8, or "wb") that appears at `path` only when the block succeeds:
    a temp file in the same folder, flushed, fsynced and renamed over `path` (the folder fsynced too);
    removed on failure. Temporaries of `path` left by killed writers (over an hour old) are removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(path)
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
    _fsync_dir(path.parent)


def _remove_stale_temps(path: Path) -> None:
    now = time.time()
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        with contextlib.suppress(OSError):
            if now - tmp.lstat().st_mtime > STALE_TEMP_S:
                tmp.unlink()


def _fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_savefig(fig: Any, path: str | os.PathLike, **kwargs: Any) -> Path:
    """Save a matplotlib figure atomically (its format from the suffix), then close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    try:
        with atomic_open(path, "wb") as fh:
            fig.savefig(fh, format=path.suffix.lstrip(".") or "png", **kwargs)
    finally:
        plt.close(fig)
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


def atomic_write_jsonl(path: str | os.PathLike, rows: Iterable[dict],
                       dumps_line: Callable[[Any], bytes] | None = None) -> Path:
    """Stream one JSON object per line to `path`, atomically; `dumps_line` (an object to its line as
    UTF-8 bytes, newline included) replaces the standard library's `json.dumps`."""
    dumps_line = dumps_line or (lambda row: (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
    with atomic_open(path, "wb", buffering=1 << 20) as fh:
        for row in rows:
            fh.write(dumps_line(row))
    return Path(path)


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

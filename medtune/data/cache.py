"""A content-keyed cache under medtune's cache folder: loaded items, file hashes, tokenized examples.

An entry lives at `cache_root()/KIND/KEY[:2]/KEY.json` (a JSON value) or `KEY.npz` (named numpy
arrays, read with `allow_pickle=False`): data formats that cannot run code, whoever wrote the file.
The key is a sha256 over everything the cached value depends on (`content_key`), so a changed file,
option, tokenizer or template gives a different key and an old entry is simply never read again.
The folders are the user's own (mode 0700); a cache folder that others can write is refused, since
they could change what medtune loads. Entries are written atomically and fsynced (`io.atomic_open`);
a damaged, foreign or unreadable entry counts as a miss. Deleting the folder is always safe.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any, Mapping

from medtune.data import fastjson
from medtune.errors import MedtuneError
from medtune.io import atomic_open, cache_dir, sha256_file

_VERSION = 2  # bump when the layout of cached values changes


def cache_root() -> Path:
    """The folder that holds medtune's content-keyed data cache (`<cache dir>/data-cache`)."""
    return cache_dir() / "data-cache"


def _canonical(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        seq = [_canonical(v) for v in obj]
        return sorted(seq, key=repr) if isinstance(obj, (set, frozenset)) else seq
    if hasattr(obj, "__dataclass_fields__"):
        import dataclasses

        return {"__dataclass__": type(obj).__name__, **_canonical(dataclasses.asdict(obj))}
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return repr(obj)


def content_key(*parts: Any) -> str:
    """sha256 (hex) of a canonical JSON of the parts: sorted keys, no whitespace, tuples as lists."""
    text = json.dumps([_VERSION, *(_canonical(p) for p in parts)], sort_keys=True,
                      separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@functools.lru_cache(maxsize=None)
def code_digest(*files: str) -> str:
    """One hash of medtune's own source files (paths under the medtune package): part of a cache key, so
    a changed loader or tokenizer never reads an entry an older version wrote."""
    root = Path(__file__).resolve().parent.parent
    return content_key(*(sha256_file(root / f) for f in files))


def _unsafe(st: os.stat_result) -> str | None:
    """Why a cache folder or file cannot be trusted (others may write it), or None."""
    if not hasattr(os, "getuid"):  # Windows: no POSIX modes to check
        return None
    if st.st_uid not in (os.getuid(), 0):
        return f"owned by another user (uid {st.st_uid})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"writable by {'others' if st.st_mode & stat.S_IWOTH else 'its group'} (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def _private_folder(folder: Path, create: bool = True) -> bool:
    """Whether `folder` and the cache folders above it exist (made with mode 0700 when `create`);
    a MedtuneError when one of them may be written by others."""
    top = cache_dir()
    for part in reversed([folder, *(p for p in folder.parents if p.is_relative_to(top))]):
        try:
            if create:
                part.mkdir(mode=0o700, exist_ok=True)
            st = os.stat(part)
        except FileNotFoundError:
            if create:
                raise
            return False
        why = _unsafe(st)
        if why is not None:
            raise MedtuneError(f"the cache folder is {why}: whoever can write it can change what medtune "
                               f"loads; run `chmod go-w {part}` or set MEDTUNE_CACHE to a folder of your own",
                               path=str(part), field="cache")
    return True


def _entry(kind: str, key: str, suffix: str) -> Path:
    if not kind or "/" in kind or kind.startswith("."):
        raise ValueError(f"bad cache kind {kind!r}")
    if len(key) < 8 or not all(c in "0123456789abcdef" for c in key):
        raise ValueError(f"bad cache key {key!r} (expected a content_key)")
    return cache_root() / kind / key[:2] / f"{key}{suffix}"


def _read(path: Path) -> bytes | None:
    """The bytes of an entry the user owns and only they can write; None when absent or foreign."""
    try:
        if not _private_folder(path.parent, create=False):
            return None
        with open(path, "rb") as fh:
            if _unsafe(os.fstat(fh.fileno())) is not None:
                return None
            return fh.read()
    except OSError:
        return None


def load_cached(kind: str, key: str) -> Any | None:
    """The JSON value stored under (kind, key), or None when absent or unreadable."""
    data = _read(_entry(kind, key, ".json"))
    if data is None:
        return None
    was = gc.isenabled()
    gc.disable()  # parsing makes many objects and nothing cyclic: collections would only cost
    try:
        doc = fastjson.loads(data)
    except (ValueError, TypeError):  # a truncated or foreign file is a miss, never an error
        return None
    finally:
        if was:
            gc.enable()
    if not isinstance(doc, dict) or doc.get("medtune-cache") != _VERSION or "value" not in doc:
        return None
    return doc["value"]


def store_cached(kind: str, key: str, value: Any) -> Path:
    """Store a JSON-able value under (kind, key) atomically; return the entry's path."""
    path = _entry(kind, key, ".json")
    _private_folder(path.parent)
    with atomic_open(path, "wb", buffering=1 << 20) as fh:
        fh.write(fastjson.dumps_line({"medtune-cache": _VERSION, "value": value}))
    return path


def load_cached_arrays(kind: str, key: str) -> dict[str, Any] | None:
    """The numpy arrays stored under (kind, key) (no object arrays, nothing unpickled), or None."""
    import io

    import numpy as np

    data = _read(_entry(kind, key, ".npz"))
    if data is None:
        return None
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except Exception:  # numpy raises several types for a damaged or foreign file: a miss
        return None


def store_cached_arrays(kind: str, key: str, arrays: Mapping[str, Any]) -> Path:
    """Store named numpy arrays under (kind, key) atomically (.npz, uncompressed); return the path."""
    import numpy as np

    path = _entry(kind, key, ".npz")
    _private_folder(path.parent)
    with atomic_open(path, "wb", buffering=1 << 20) as fh:
        np.savez(fh, **arrays)
    return path

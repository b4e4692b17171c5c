"""A content-keyed cache under medtune's cache folder: loaded items, tokenized examples, ...

An entry lives at `cache_root()/KIND/KEY[:2]/KEY.pkl`. The key is a sha256 over everything the
cached value depends on (`content_key`), so a changed file, option, tokenizer or template gives a
different key and an old entry is simply never read again. Entries are written atomically (temp
file + rename); a damaged or unreadable entry counts as a miss. Deleting the folder is always safe.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

from medtune.io import cache_dir

_VERSION = 1  # bump when the layout of cached values changes


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


def _entry(kind: str, key: str) -> Path:
    if not kind or "/" in kind or kind.startswith("."):
        raise ValueError(f"bad cache kind {kind!r}")
    if len(key) < 8 or not all(c in "0123456789abcdef" for c in key):
        raise ValueError(f"bad cache key {key!r} (expected a content_key)")
    return cache_root() / kind / key[:2] / f"{key}.pkl"


def load_cached(kind: str, key: str) -> Any | None:
    """The value stored under (kind, key), or None when absent or unreadable."""
    path = _entry(kind, key)
    was = gc.isenabled()
    gc.disable()  # unpickling makes many objects and nothing cyclic: collections would only cost (2x)
    try:
        with open(path, "rb") as fh:
            return pickle.load(fh)
    except FileNotFoundError:
        return None
    except Exception:  # a truncated or foreign file is a miss, never an error
        return None
    finally:
        if was:
            gc.enable()


def store_cached(kind: str, key: str, obj: Any) -> Path:
    """Store `obj` under (kind, key) atomically (pickle, highest protocol); return the entry's path."""
    path = _entry(kind, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path

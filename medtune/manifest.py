"""The run manifest: what ran, on what, with which code, data and seed."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
import re
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any

PACKAGES = ("medtune", "torch", "transformers", "peft", "trl", "accelerate", "datasets", "tokenizers",
            "safetensors", "numpy")


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages a result depends on."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit() -> str | None:
    """The medtune source's git commit when run from a checkout."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "") if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def build_manifest(**extra: Any) -> dict[str, Any]:
    """Versions, platform, git commit, command line and time, plus the caller's fields."""
    return {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["medtune", *sys.argv[1:]]),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "packages": package_versions(),
        "git_commit": git_commit(),
        **extra,
    }


LOCAL = "<local>"  # stands for a folder of this machine in what medtune shares
REDACTED = "<redacted>"
# an absolute POSIX path of two parts or more, wherever it sits in a string (not a URL's //host/...)
_PATH = re.compile(r"(?<![\w.:/~-])~?/[^\s/\"'<>]+(?:/[^\s/\"'<>,;)]+)+/?")
# keys whose values are never shared: secrets the recipe sets, rows of the user's data quoted in notes
_REDACT = {"env": lambda v: {k: REDACTED for k in v} if isinstance(v, dict) else REDACTED,
           "skipped_examples": lambda v: [],
           "command": lambda v: " ".join(str(v).split()[:2]) + " (arguments not shared)"}


def shareable(obj: Any, run: str | os.PathLike) -> Any:
    """A copy of a manifest, recipe or summary fit to publish: paths inside `run` made relative to it, other
    local paths reduced to `<local>/NAME`, no `env` values, no quoted data rows, no command line."""
    root = Path(run)
    roots = sorted({str(root), os.path.abspath(root), str(root.resolve())}, key=len, reverse=True)

    def path(p: str) -> str:
        full = os.path.expanduser(p)
        for r in roots:
            if full == r:
                return "."
            if full.startswith(r.rstrip("/") + "/"):
                return full[len(r.rstrip("/")) + 1:].rstrip("/")
        return f"{LOCAL}/{PurePosixPath(full.rstrip('/')).name}"

    def text(s: str) -> str:
        if "/" in s and not _PATH.fullmatch(s) and not s.startswith(("hf:", "http")) and Path(s).exists():
            return path(str(Path(s).resolve()))  # a relative path of this machine
        if os.path.isabs(s):
            return path(s)
        return _PATH.sub(lambda m: path(m.group(0)), s)

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: _REDACT[k](v) if k in _REDACT else walk(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [walk(v) for v in value]
        return text(value) if isinstance(value, str) else value

    return walk(obj)


def cpu_model() -> str:
    """The CPU's model name (for benchmark figures)."""
    import platform
    from pathlib import Path

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"

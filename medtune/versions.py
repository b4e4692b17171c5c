"""The versions of the core packages medtune is tested on, and what `medtune doctor` says about the
installed ones. The floors equal pyproject.toml's lower bounds (a test checks it); CI's floor leg installs
all of them at once, its GPU-image leg the stack of a common H100/H200 image, its newest leg the newest
releases. `newest` is the newest release a CI run has passed on; a later one is reported, not refused."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import metadata

from packaging.version import Version


@dataclass(frozen=True)
class Tested:
    """One package's tested range: the pip spec as pyproject.toml declares it, the newest release CI passed on."""

    spec: str
    newest: str

    @property
    def floor(self) -> str:
        """The declared lower bound: 'peft>=0.18' -> '0.18'."""
        return re.search(r">=\s*([\w.]+)", self.spec).group(1)


# torch is tested at 2.13.0 (the CPU wheel) on every CI leg; its floor 2.6 is declared so that a vendor's
# GPU build (2.11.0+cu130, 2.7.1+rocm6.4, ...) is kept, and transformers 5 itself needs 2.6.
TESTED: dict[str, Tested] = {
    "torch": Tested("torch>=2.6,<2.14", "2.13.0"),
    "transformers": Tested("transformers>=5.0,<6", "5.25.0"),
    "peft": Tested("peft>=0.18", "0.21.2"),
    "accelerate": Tested("accelerate>=1.10.1", "1.16.0"),
    "huggingface_hub": Tested("huggingface_hub>=1.3", "2.4.0"),
    "tokenizers": Tested("tokenizers>=0.22.1", "0.23.3"),
    "safetensors": Tested("safetensors>=0.4.3", "0.8.0"),
    "numpy": Tested("numpy>=1.26", "2.4.6"),
}


def version_key(version: str) -> Version:
    """A comparable release: '2.11.0+cu130' -> 2.11.0 (the local build tag is ignored)."""
    return Version(Version(version).base_version) if "+" in version else Version(version)


def installed(name: str) -> str | None:
    """The installed version of a distribution, or None."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def outside_tested(versions: dict[str, str | None] | None = None) -> list[str]:
    """One line per core package outside its tested range, each with the command that fixes it."""
    found = versions if versions is not None else {name: installed(name) for name in TESTED}
    out = []
    for name, tested in TESTED.items():
        have = found.get(name)
        if have is None:
            out.append(f"{name} is not installed; medtune needs it: pip install '{tested.spec}'")
        elif version_key(have) < version_key(tested.floor):
            out.append(f"{name} {have} is older than medtune supports (tested {tested.floor} to {tested.newest}): "
                       f"pip install '{tested.spec}'")
        elif version_key(have) > version_key(tested.newest):
            # torch: a vendor build newer than CI's wheel is kept by design (the range is declared for it)
            if name == "torch":
                continue
            out.append(f"{name} {have} is newer than medtune has been tested on (tested {tested.floor} to "
                       f"{tested.newest}); if something breaks: pip install '{name}=={tested.newest}'")
    return out

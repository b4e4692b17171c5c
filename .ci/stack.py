"""Print the pins of one CI leg, one `name==version` a line, for `pip install -r /dev/stdin`.

    python .ci/stack.py floor       every lower bound pyproject.toml declares (core and the extras the
                                    floor leg installs), so that what is declared is what is tested
    python .ci/stack.py gpu-image   the stack of the GPU image medtune's prepared GPU run meets
"""

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLOOR_EXTRAS = ("hub", "parquet", "embedded", "plots", "logs", "rl")
# an H100/H200 image: torch 2.11.0+cu130 there (the CPU legs keep torch 2.13.0), numpy 2.5 there (the
# newest numpy on PyPI's CPU wheels is installed instead when 2.5 is not published yet)
GPU_IMAGE = {"transformers": "5.17.0", "accelerate": "1.15.0", "tokenizers": "0.23.2",
             "huggingface_hub": "1.33.0", "safetensors": "0.8.0"}
GPU_IMAGE_EXTRAS = ["numpy", "peft", "pyarrow", "scipy", "matplotlib", "tensorboard", "pyyaml", "tqdm", "gguf"]


def floors() -> list[str]:
    """`name==floor` for every `name>=floor` in the core dependencies and FLOOR_EXTRAS (torch excepted)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in FLOOR_EXTRAS:
        specs += [s for s in project["optional-dependencies"][extra] if not s.startswith("medtune")]
    out = {}
    for spec in specs:
        m = re.match(r"^([A-Za-z0-9_.-]+)\s*>=\s*([\d.]+)", spec)
        if m and m.group(1) != "torch":
            out[m.group(1)] = f"{m.group(1)}=={m.group(2)}"
    return sorted(out.values())


def main(leg: str) -> None:
    if leg == "floor":
        print("\n".join(floors()))
    elif leg == "gpu-image":
        print("\n".join([f"{k}=={v}" for k, v in GPU_IMAGE.items()] + GPU_IMAGE_EXTRAS))
    else:
        sys.exit(f"usage: python .ci/stack.py floor|gpu-image (not {leg!r})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "")

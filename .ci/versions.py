"""One line naming the installed version of every package the version matrix pins."""

from importlib import metadata

NAMES = ("torch", "transformers", "peft", "accelerate", "huggingface_hub", "tokenizers", "safetensors", "numpy",
         "datasets", "pyarrow", "trl", "gguf")


def version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


print(" ".join(f"{n}={version(n)}" for n in NAMES))

"""`medtune export RUN --merge --out DIR`: the adapter merged into a plain transformers model."""

from __future__ import annotations

from pathlib import Path

import yaml

from medtune.errors import MedtuneError
from medtune.io import replace_dir


def export_run(run: str, out: str, merge: bool = True) -> Path:
    """Merge RUN/adapter into its base model and save safetensors + tokenizer to `out` atomically."""
    from medtune.backend import select_backend
    from medtune.models import load_causal_lm, load_tokenizer, resolve_model

    run_dir = Path(run)
    recipe_file, adapter = run_dir / "recipe.yaml", run_dir / "adapter"
    if not recipe_file.is_file():
        raise MedtuneError("not a medtune run folder (no recipe.yaml)", path=str(run_dir))
    if not (adapter / "adapter_config.json").is_file():
        raise MedtuneError("this run has no adapter to merge (full fine-tuning writes model/ already)",
                           path=str(adapter))
    recipe = yaml.safe_load(recipe_file.read_text("utf-8"))
    ref = resolve_model(recipe["model"]["name"])
    backend = select_backend("cpu", "float32")
    model = load_causal_lm(ref, backend, adapter=str(adapter),
                           trust_remote_code=recipe["model"].get("trust_remote_code", False))
    merged = model.merge_and_unload()
    target = Path(out)
    with replace_dir(target) as staging:
        merged.save_pretrained(staging, safe_serialization=True)
        load_tokenizer(ref).save_pretrained(staging)
    return target

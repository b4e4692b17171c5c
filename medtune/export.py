"""`medtune export RUN --merge --out DIR`: the adapter merged, in fp32, into a plain transformers model,
and the largest change in predictions the merge causes on a sample of the run's eval questions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from medtune.errors import MedtuneError
from medtune.io import atomic_write_json, check_apart, check_replaceable, replace_dir
from medtune.runfolder import RunFolder

CHECK_FILE = "medtune-merge-check.json"


def export_run(run: str, out: str, sample: int = 32) -> Path:
    """Merge RUN/adapter into its base model in fp32 and save safetensors + tokenizer to `out` atomically,
    with medtune-merge-check.json: how much the merge moved the predictions on `sample` eval questions.
    (The unmerged export is RUN/adapter itself.)"""
    from medtune.eval.runtime import RuntimeSpec, load_runtime
    from medtune.models import attach_adapter

    folder = RunFolder(run)
    check_apart(out, [folder.root], field="--out")
    check_replaceable(out, field="--out")  # before the merge, which takes minutes
    if not folder.recipe.is_file():
        raise MedtuneError("not a medtune run folder (no recipe.yaml)", path=str(folder))
    if not (folder.adapter / "adapter_config.json").is_file():
        raise MedtuneError("this run has no adapter to merge (full fine-tuning writes model/ already)",
                           path=str(folder.adapter))
    recipe = yaml.safe_load(folder.recipe.read_text("utf-8"))
    # the merge in fp32 (a bf16 merge rounds small updates away); the adapter attached unmerged: the reference
    rt = load_runtime(RuntimeSpec(model=recipe["model"]["name"], trust_remote_code=recipe["model"]["trust_remote_code"],
                                  device="cpu", dtype="float32", encoder=False, who="export"), quiet=True)
    model = attach_adapter(rt.model, str(folder.adapter)).eval()
    tokenizer = rt.tokenizer
    items = _sample(folder, sample)
    before = _probabilities(model, tokenizer, items, recipe)
    merged = model.merge_and_unload()
    check = _compare(before, _probabilities(merged, tokenizer, items, recipe), items)
    target = Path(out)
    with replace_dir(target, field="--out") as staging:
        merged.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        atomic_write_json(Path(staging) / CHECK_FILE, check)
    print(f"merge check on {check['questions']} eval questions (fp32 merge vs the unmerged adapter): largest "
          f"probability change {check['max_abs_probability_change']:.2e}, {check['changed_predictions']} "
          f"predicted letters changed", flush=True)
    return target


def _sample(folder: RunFolder, n: int) -> list:
    """The first n of the run's eval questions (re-derived from its recipe)."""
    from medtune.train.recipe import load_recipe
    from medtune.train.trainset import load_questions

    try:
        evals = load_questions(load_recipe(str(folder.recipe))).evals
    except MedtuneError as err:
        print(f"medtune: the merge check is skipped: the run's eval questions cannot be loaded ({err})")
        return []
    return evals[:n]


def _probabilities(model: Any, tokenizer: Any, items: list, recipe: dict) -> list[list[float]]:
    from medtune.eval.run import score_items
    from medtune.eval.scoring import softmax

    if not items:
        return []
    template = recipe["data"].get("template", "auto")
    from medtune.data.prompts import resolve_template

    scores, _ = score_items(model, tokenizer, items, recipe["train"].get("eval_scorer", "letter"),
                            resolve_template(template, tokenizer), batch_size=8, device="cpu")
    name = next(iter(scores))
    return [softmax(s) for s in scores[name]]


def _compare(before: list[list[float]], after: list[list[float]], items: list) -> dict:
    deltas = [max(abs(a - b) for a, b in zip(pa, pb)) for pa, pb in zip(before, after)]
    flips = sum(max(range(len(pa)), key=pa.__getitem__) != max(range(len(pb)), key=pb.__getitem__)
                for pa, pb in zip(before, after))
    return {"questions": len(items), "merge_dtype": "float32",
            "max_abs_probability_change": max(deltas, default=0.0), "changed_predictions": flips,
            "ids": [it.id for it in items]}

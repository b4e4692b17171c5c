"""Share a run: a model card with model-index results and `medtune push` to the Hugging Face Hub
(`medtune space`, a ready Gradio Space folder, is medtune.space).

Everything that goes up is first built in a local folder (`--dry-run` stops there and lists it),
then uploaded in one commit through `huggingface_hub`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from medtune.errors import MedtuneError
from medtune.io import MARKER, check_apart, load_json, replace_dir
from medtune.runfolder import RunFolder
from medtune.serve.answer import NOTICE, trained_folder

# the Hub ids of the embedded models (what a Space or a card's base_model names)
EMBEDDED_HUB_IDS = {"smollm2-135m-instruct": "HuggingFaceTB/SmolLM2-135M-Instruct",
                    "minilm-l6": "sentence-transformers/all-MiniLM-L6-v2"}
EMBEDDED_LICENSES = {"smollm2-135m-instruct": "apache-2.0", "minilm-l6": "apache-2.0"}
# loader format → the benchmark's Hub dataset and its display name
DATASETS = {"medmcqa": ("openlifescienceai/medmcqa", "MedMCQA"),
            "medqa": ("GBaker/MedQA-USMLE-4-options", "MedQA-USMLE"),
            "pubmedqa": ("qiaojin/PubMedQA", "PubMedQA"),
            "mmlu": ("cais/mmlu", "MMLU (medical subjects)")}


def _read_json(path: Path) -> Any:
    return load_json(path, missing="missing: not a finished medtune run")


def run_info(run: str) -> dict:
    """What a run folder holds: summary, recipe, final metrics, trained folder, base model."""
    import yaml

    folder = RunFolder(run)
    summary = _read_json(folder.metrics)
    final = _read_json(folder.final.metrics)
    recipe = yaml.safe_load(folder.recipe.read_text("utf-8")) if folder.recipe.is_file() else {}
    trained = trained_folder(folder.root, summary)
    if not trained.is_dir():
        raise MedtuneError("the trained adapter/model folder is missing", path=str(trained))
    return {"folder": folder.root, "summary": summary, "final": final, "recipe": recipe, "trained": trained,
            "is_adapter": trained.name == "adapter", "model_name": (recipe.get("model") or {}).get("name")}


def base_model_id(info: dict, override: str | None = None) -> str | None:
    """The base model's Hub id: --base-model, the embedded model's id, the recipe's Hub id, else None."""
    from medtune.models import HUB_ID

    if override:
        return override
    name = info["model_name"]
    if name in EMBEDDED_HUB_IDS:
        return EMBEDDED_HUB_IDS[name]
    if name and HUB_ID.fullmatch(name) and not Path(name).exists():
        return name
    return None


def datasets_of(final: dict) -> list[tuple[str, str]]:
    """(Hub id, display name) of each benchmark the final evaluation read."""
    out = []
    for src in final["manifest"]["data"]["sources"]:
        path, fmt = str(src.get("path", "")), src.get("format")
        if path.startswith("hf:"):
            hub = path[3:].split(":")[0]
            entry = (hub, hub)
        elif fmt in DATASETS:
            entry = DATASETS[fmt]
        else:
            continue
        if entry not in out:
            out.append(entry)
    return out


def build_card(info: dict, repo: str, base_model: str | None = None, license: str | None = None) -> Any:
    """The model card (huggingface_hub.ModelCard) with metadata and model-index results."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    summary, final = info["summary"], info["final"]
    base = base_model_id(info, base_model)
    lic = license or EMBEDDED_LICENSES.get(info["model_name"] or "", "other")
    data = datasets_of(final)
    split_how = (summary.get("split") or {}).get("how", "")
    results = []
    bench = data[0] if data else ("local", "local multiple-choice questions")
    for name, r in final["results"].items():
        lo, hi = r["ci95"]
        results.append(EvalResult(
            task_type="multiple-choice", task_name="Multiple-choice question answering",
            dataset_type=bench[0], dataset_name=f"{bench[1]} ({summary.get('eval_questions')} held-out questions)",
            dataset_split="held-out", metric_type="accuracy", metric_value=round(r["accuracy"], 4),
            metric_name=f"accuracy, {name} scorer (95% CI {lo:.3f}-{hi:.3f})",
            verified=False))
        avg = ((final.get("permutation") or {}).get(name) or {}).get("averaged")
        if avg:  # option-order robust: the option probabilities averaged over every order, mapped back
            results.append(EvalResult(
                task_type="multiple-choice", task_name="Multiple-choice question answering",
                dataset_type=bench[0], dataset_name=f"{bench[1]} ({summary.get('eval_questions')} held-out questions)",
                dataset_split="held-out", metric_type="accuracy", metric_value=round(avg["accuracy"], 4),
                metric_name=f"permutation-averaged accuracy, {name} scorer, {final['permutation']['spec']} orders "
                            f"(95% CI {avg['ci95'][0]:.3f}-{avg['ci95'][1]:.3f})", verified=False))
    from medtune.train.methods import METHODS

    method = summary.get("method")
    tags = list(dict.fromkeys(["medtune", "medical", "clinical", "multiple-choice"] + ([method] if method else [])
                              + (["peft", "lora"] if info["is_adapter"] else [])))
    encoder = METHODS[method].encoder if method in METHODS else not info["is_adapter"]
    card_data = ModelCardData(
        base_model=base, library_name="peft" if info["is_adapter"] else "transformers", license=lic,
        datasets=[d[0] for d in data] or None, tags=tags, language=["en"],
        pipeline_tag="multiple-choice" if encoder else "text-generation",
        model_name=repo, eval_results=results)
    text = _card_text(info, repo, base, data, split_how)
    content = f"---\n{card_data.to_yaml()}\n---\n{text}"
    return ModelCard(content)


def _card_text(info: dict, repo: str, base: str | None, data: list, split_how: str) -> str:
    s = info["summary"]
    cmp_rows = (s.get("compare") or {}).get("rows") or []
    lines = [f"# {repo}", "", f"> {NOTICE}", "",
             f"A `{s.get('method')}` fine-tune of `{base or s.get('model')}` for clinical multiple-choice "
             f"question answering, trained and evaluated with medtune.", "",
             "## Results", "",
             f"Held-out questions: {s.get('eval_questions')} ({split_how}); trained on "
             f"{s.get('train_questions')} questions for {s.get('steps')} steps in {s.get('precision')}.", "",
             "| scorer | before | 95% CI | after | 95% CI | difference | McNemar p |",
             "|---|---|---|---|---|---|---|"]
    for r in cmp_rows:
        b, n = r["base"], r["new"]
        lines.append(f"| {r['result']} | {b['accuracy']:.3f} | {b['ci95'][0]:.3f}-{b['ci95'][1]:.3f} | "
                     f"{n['accuracy']:.3f} | {n['ci95'][0]:.3f}-{n['ci95'][1]:.3f} | {r['difference']:+.3f} | "
                     f"{r['mcnemar']['p_value']:.3g} |")
    if not cmp_rows:
        for name, r in info["final"]["results"].items():
            lines.append(f"| {name} | | | {r['accuracy']:.3f} | {r['ci95'][0]:.3f}-{r['ci95'][1]:.3f} | | |")
    b = info["final"]["baselines"]
    mf = b["most_frequent_letter"]
    lines += ["", f"Baselines on the same questions: chance {b['chance']:.3f}; always answering "
                  f"{mf['letter']!r}, the most frequent gold letter, {mf['accuracy']:.3f} "
                  f"({mf['ci95'][0]:.3f}-{mf['ci95'][1]:.3f}). A model that does not beat that interval has not "
                  "shown clinical knowledge beyond the answer prior.", "",
              "Accuracies use the log-likelihood scorers of `medtune eval` (the same rule as "
              "lm-evaluation-harness); intervals are 95% Wilson intervals; the before/after test is an exact "
              "McNemar test on the same questions. `report/report.html` has the curves, per-subject accuracy, "
              "calibration and confusion matrices; `manifest.json` the versions, backend and data hashes.", "",
              "## Use", ""]
    if info["is_adapter"]:
        lines += ["```python", "from transformers import AutoModelForCausalLM", "from peft import PeftModel", "",
                  f"base = AutoModelForCausalLM.from_pretrained({base or 'BASE_MODEL'!r})",
                  f"model = PeftModel.from_pretrained(base, {repo!r})", "```", "",
                  f"or `medtune ask --model {base or 'BASE_MODEL'} --adapter {repo} -q ... -o ... -o ...`."]
    else:
        lines += [f"`medtune ask --model {repo} -q ... -o ... -o ...`"]
    lines += ["", "## Training data", ""] + [f"- [{d[1]}](https://huggingface.co/datasets/{d[0]})" for d in data]
    lines += ["", "## Limitations", "",
              "Multiple-choice accuracy on a benchmark says little about safe clinical use. The model can be "
              "confidently wrong; it must not be used for diagnosis or treatment decisions."]
    return "\n".join(lines) + "\n"


def build_push_folder(run: str, out: str, repo: str, base_model: str | None = None,
                      license: str | None = None) -> Path:
    """The exact folder `medtune push` uploads: card, adapter (or model), report, and the run's manifest,
    metrics and recipe made shareable (medtune.manifest.shareable: no local paths, env values or data rows)."""
    import yaml

    from medtune.eval.report import build_report
    from medtune.manifest import shareable

    info = run_info(run)
    check_apart(out, [info["folder"], info["trained"]], field="--out")
    public = {**info, "summary": shareable(info["summary"], run), "final": shareable(info["final"], run)}
    card = build_card(public, repo, base_model, license)
    folder = RunFolder(run)
    with replace_dir(out, field="--out") as tmp:
        for f in sorted(info["trained"].iterdir()):
            if f.is_file() and f.name not in ("README.md", MARKER):
                shutil.copy2(f, tmp / f.name)
        config = tmp / "adapter_config.json"
        if config.is_file():  # the adapter names the Hub base (or the base's folder name), not this machine's path
            cfg = json.loads(config.read_text("utf-8"))
            cfg["base_model_name_or_path"] = base_model_id(info, base_model) or \
                shareable(cfg.get("base_model_name_or_path"), run)
            config.write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
        build_report(run, out=str(tmp / "report"), clean=lambda obj: shareable(obj, run))
        for path in (folder.manifest, folder.metrics):
            if path.is_file():
                (tmp / path.name).write_text(json.dumps(shareable(_read_json(path), run), indent=2,
                                                        ensure_ascii=False) + "\n", encoding="utf-8")
        if info["recipe"]:
            (tmp / folder.recipe.name).write_text(yaml.safe_dump(shareable(info["recipe"], run), sort_keys=False),
                                                  encoding="utf-8")
        (tmp / "README.md").write_text(str(card), encoding="utf-8")
        _refuse_local_paths(tmp, [info["folder"], info["trained"], Path.home()])
    return Path(out)


TEXT_SUFFIXES = (".json", ".yaml", ".md", ".html", ".txt", ".jinja", ".model")


def _refuse_local_paths(folder: Path, places: list[Path]) -> None:
    """A last check before anything leaves: no text file names a folder of this machine."""
    import os

    import re

    needles = {str(p) for place in places for p in (Path(os.path.abspath(place)), Path(place).resolve())
               if len(str(p)) > 1}
    for f in sorted(folder.rglob("*")):
        if f.is_file() and f.suffix in TEXT_SUFFIXES:
            text = f.read_text("utf-8", errors="replace")
            found = next((n for n in needles if re.search(re.escape(n) + r"(?![\w.-])", text)), None)
            if found:
                raise MedtuneError(f"would share a path of this machine ({found}); nothing was uploaded",
                                   path=str(f.relative_to(folder)), field="--out")


def list_folder(folder: Path) -> list[tuple[str, int]]:
    """(path, bytes) of every file that goes up (medtune's folder marker stays here)."""
    return [(str(p.relative_to(folder)), p.stat().st_size) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != MARKER]


def visibility(private: bool) -> str:
    """The Hub's word for a visibility."""
    return "private" if private else "public"


def push(run: str, repo: str, *, private: bool = True, dry_run: bool = False, out: str | None = None,
         base_model: str | None = None, license: str | None = None, token: str | None = None) -> dict:
    """Build the folder, then (unless dry_run) create the repo (private unless asked otherwise), check that
    its visibility is the one asked for, and upload the folder in one commit."""
    from medtune.models import HUB_ID

    if not HUB_ID.fullmatch(repo):
        raise MedtuneError("must be a Hub repo id: owner/name", path=repo, field="--repo")
    folder = build_push_folder(run, out or str(RunFolder(run).hub), repo, base_model, license)
    files = list_folder(folder)
    result = {"repo": repo, "private": private, "folder": str(folder), "files": files, "uploaded": False}
    if dry_run:
        return result
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(token=token)
    try:
        url = api.create_repo(repo, private=private, exist_ok=True)  # an existing repo keeps its visibility
        actual = bool(api.repo_info(repo).private)
        if actual != private:
            raise MedtuneError(
                f"the repo exists and is {visibility(actual)}, but this push is {visibility(private)}"
                f"{' (the default)' if private else ' (--public)'}; nothing was uploaded. Change the repo first "
                f"(`hf repos settings {repo} --{visibility(private)}`, or its settings page on the Hub)"
                + (", or publish deliberately with --public" if private else ", or push without --public"),
                path=repo, field="--repo")
        commit = api.upload_folder(repo_id=repo, folder_path=str(folder), ignore_patterns=[MARKER],
                                   commit_message=f"medtune: {Path(run).resolve().name}")
    except HfHubHTTPError as err:
        raise MedtuneError(f"the Hub refused the upload: {' '.join(str(err).split())[:300]}", path=repo,
                           field="--repo") from None
    except MedtuneError:
        raise
    except Exception as err:  # noqa: BLE001 - the HTTP client's connection errors (httpx or httpx2) and OSError
        raise MedtuneError(f"cannot reach the Hub: {type(err).__name__}: {' '.join(str(err).split())[:200]} "
                           "(offline? use --dry-run)", path=repo, field="--repo") from None
    result.update(private=actual, uploaded=True, url=str(url), commit=commit.oid, commit_url=commit.commit_url)
    return result

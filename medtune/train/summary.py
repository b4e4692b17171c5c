"""The end of a training run: the before/after comparison, the curve plot, the run summary
(metrics.json) and the manifest."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from medtune.runfolder import RunFolder

if TYPE_CHECKING:
    from medtune.train.recipe import Recipe
    from medtune.train.run import Setup


def summarize(recipe: Recipe, s: Setup, run: RunFolder, baseline: dict | None, final: dict, trainer: Any,
              result: Any, examples: list[dict], saved: Any, *, train_s: float, total_s: float) -> dict:
    """The comparison, the curve plot and the run summary (metrics.json)."""
    from medtune.train import methods
    from medtune.train.report import format_distributions, letter_distributions, plot_curves
    from medtune.train.trainset import total_tokens

    comparison = compare_before_after(run, baseline)
    letters = letter_distributions(s.questions.evals, baseline, final)
    letters_line = format_distributions(letters)
    print(letters_line, flush=True)
    primary, t = final["primary"], recipe.train
    mf = final["baselines"]["most_frequent_letter"]
    plot_curves(trainer.state.log_history, run.curves, baseline["results"][primary]["accuracy"] if baseline
                else None, final["results"][primary]["accuracy"], prior=(mf["letter"], mf["accuracy"]))
    seen = result.global_step * t.batch_size * t.grad_accum / max(1, len(examples))
    tokens = total_tokens(examples) * seen
    trainable, total = methods.trainable_parameters(trainer.model)
    q = s.questions
    return {
        "method": recipe.method, "model": s.ref.name, "precision": s.precision, "template": s.template,
        "train_questions": len(q.train), "eval_questions": len(q.evals), "split": q.info,
        "steps": result.global_step, "train_loss": result.training_loss, "train_seconds": train_s,
        "approx_train_tokens_per_s": tokens / train_s if train_s else None,
        "trainable_parameters": trainable, "total_parameters": total,
        "baseline": accuracy_brief(baseline), "final": accuracy_brief(final),
        "compare": comparison, "letters": letters, "letters_line": letters_line,
        "scoring": {"baseline": (baseline or {}).get("scoring"), "final": final["scoring"]},
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "output": str(saved), "total_seconds": total_s,
    }


def compare_before_after(run: RunFolder, baseline: dict | None) -> dict | None:
    """McNemar's test of the final scores against the baseline's, printed and written into the run (None
    without a baseline)."""
    from medtune.eval.compare import compare_runs, format_compare

    if baseline is None:
        return None
    comparison = compare_runs(str(run.baseline), str(run.final), out=str(run))
    print(format_compare(comparison), flush=True)
    return comparison


def write_outputs(recipe: Recipe, s: Setup, run: RunFolder, summary: dict) -> None:
    """metrics.json and manifest.json."""
    from medtune.manifest import build_manifest

    run.write_json(run.metrics, summary)
    ref = s.ref
    run.write_json(run.manifest, build_manifest(
        recipe=recipe.to_dict(), backend=s.backend.to_dict(), precision=s.precision,
        data=s.questions.report.to_dict(), model={"name": ref.name, "path": ref.path, "kind": ref.kind,
                                                   "note": ref.note},
        split={**s.questions.info, "selection_ids": sorted(it.id for it in s.questions.selection)}))


def accuracy_brief(metrics: dict | None) -> dict | None:
    """Accuracy and its interval per result, and the letter baselines, for the run summary."""
    if metrics is None:
        return None
    return {name: {"accuracy": r["accuracy"], "ci95": r["ci95"]} for name, r in metrics["results"].items()} | {
        "baselines": metrics["baselines"]}

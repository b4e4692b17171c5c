"""`method: grpo`: reinforcement fine-tuning with a verifiable reward (the answer letter), through TRL.

`run_grpo(recipe)` reads top to bottom: set up, score the starting model with the generative scorer on
the held-out questions, train a LoRA adapter with TRL's GRPOTrainer (prompts are the generative
scorer's chat prompts, rewards `medtune.train.rewards`), save it, score again in the same regime
(same prompt, max_new_tokens, thinking, batch size, dtype), compare with McNemar's test. The recipe's
`grpo:` section is `GrpoArgs`. TRL is an optional extra: `pip install 'medtune[rl]'`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medtune.config import opt
from medtune.errors import MedtuneError
from medtune.train.grpo_trainer import build_grpo_trainer, save_adapter, start_policy

if TYPE_CHECKING:
    from medtune.train.recipe import Recipe

BACKENDS = ("auto", "hf", "vllm")
NEEDS_TRL = "method grpo needs TRL: pip install 'medtune[rl]' (or pip install 'trl>=1.0')"


@dataclass
class GrpoArgs:
    num_generations: int = opt(8, "completions sampled per prompt (the group size); the advantage is each "
                                  "reward minus its group's mean")
    max_completion_length: int = opt(256, "longest completion in tokens (longer ones are cut and usually "
                                          "unparseable, so reward 0)")
    max_prompt_length: int = opt(512, "longest prompt in tokens; longer questions are left out of training "
                                      "and counted")
    beta: float = opt(0.04, "KL weight against the starting model (0: no reference pass, less compute)")
    temperature: float = opt(1.0, "sampling temperature of the completions")
    format_reward_weight: float = opt(0.0, "extra reward for a completion with a readable answer line "
                                           "(0: off; keep it small, e.g. 0.1, below the 1 of a right answer)")
    thinking: bool = opt(False, "let a thinking model think (Qwen3 enable_thinking) while training and in "
                                "the before/after evaluation")
    from_adapter: str | None = opt(None, "start from this SFT adapter folder (trained further) instead of "
                                         "a fresh LoRA adapter on the base model")
    generation_backend: str = opt("auto", "auto (vLLM colocated when importable on a GPU, else HF generate), "
                                          "hf or vllm")
    vllm_gpu_memory_utilization: float = opt(0.3, "share of GPU memory vLLM may take in colocate mode")
    eval_max_new_tokens: int = opt(256, "before/after evaluation: the longest generated answer in tokens")
    eval_batch_size: int = opt(8, "before/after evaluation: questions per generate call")


def grpo_problems(g: GrpoArgs, batch_size: int, grad_accum: int) -> list[tuple[str, str]]:
    """Cross-field checks of the grpo section: (dotted key, problem) pairs."""
    out = []
    for key in ("num_generations", "max_completion_length", "max_prompt_length", "eval_max_new_tokens",
                "eval_batch_size"):
        if getattr(g, key) < 1:
            out.append((f"grpo.{key}", f"must be positive, got {getattr(g, key)}"))
    if g.num_generations < 2:
        out.append(("grpo.num_generations", "a group needs at least 2 completions (advantages are relative)"))
    elif (batch_size * grad_accum) % g.num_generations:
        out.append(("train.batch_size", f"train.batch_size x train.grad_accum ({batch_size} x {grad_accum}) counts "
                                        f"completions per step and must be a multiple of grpo.num_generations "
                                        f"({g.num_generations})"))
    if g.beta < 0 or g.temperature <= 0 or g.format_reward_weight < 0:
        out.append(("grpo", "beta and format_reward_weight must be >= 0 and temperature > 0"))
    if g.generation_backend not in BACKENDS:
        out.append(("grpo.generation_backend", f"{g.generation_backend!r} is not one of {', '.join(BACKENDS)}"))
    if g.from_adapter and not (Path(g.from_adapter) / "adapter_config.json").is_file():
        out.append(("grpo.from_adapter", f"{g.from_adapter}: no adapter_config.json, so not a PEFT adapter folder"))
    return out


def vllm_importable() -> bool:
    """Whether the vllm package is installed (without importing it)."""
    return importlib.util.find_spec("vllm") is not None


def generation_backend(kind: str, vllm_available: bool, requested: str = "auto") -> tuple[str, str]:
    """How GRPO will generate completions on a backend kind: ("vllm" or "hf", the reason in words)."""
    if requested == "hf":
        return "hf", "HF generate, as the recipe asks (grpo.generation_backend=hf)"
    if kind not in ("cuda", "rocm"):
        if requested == "vllm":
            raise MedtuneError(f"vLLM generation needs a CUDA or ROCm GPU; this machine is {kind}",
                               field="grpo.generation_backend")
        return "hf", f"HF generate: vLLM needs a CUDA or ROCm GPU ({kind} here)"
    if not vllm_available:
        if requested == "vllm":
            raise MedtuneError("vLLM is not installed (pip install vllm)", field="grpo.generation_backend")
        return "hf", "HF generate: vLLM is not installed (pip install vllm for faster sampling)"
    rocm = (" (never server mode on ROCm: GRPO + vLLM server hangs on MI300X, see docs/grpo.md)"
            if kind == "rocm" else "")
    return "vllm", f"vLLM in TRL's colocate mode, sharing the training GPU{rocm}"


def require_trl() -> None:
    """TRL must be importable (the `rl` extra), else one line naming the extra."""
    if importlib.util.find_spec("trl") is None:
        raise MedtuneError(NEEDS_TRL, field="method")


def grpo_dataset(items: list, tokenizer: Any, g: GrpoArgs) -> tuple[Any, int]:
    """TRL's prompt dataset (the generative scorer's chat prompt, gold index and options per row) and how
    many questions were left out for a prompt longer than `max_prompt_length` tokens."""
    from datasets import Dataset

    from medtune.eval.generate import generative_prompt

    rows, too_long = [], 0
    for it in items:
        prompt = generative_prompt(it, tokenizer, thinking=g.thinking)
        if len(tokenizer(prompt, add_special_tokens=False)["input_ids"]) > g.max_prompt_length:
            too_long += 1
            continue
        rows.append({"prompt": prompt, "answer_index": it.answer_index, "options": list(it.options), "id": it.id})
    if not rows:
        raise MedtuneError(f"every training prompt is longer than grpo.max_prompt_length ({g.max_prompt_length} "
                           "tokens)", field="grpo.max_prompt_length")
    return Dataset.from_list(rows), too_long


RESUME_REFUSED = ("method grpo does not resume: TRL's GRPOTrainer, resumed from a checkpoint, trains one step past "
                  "max_steps, so the adapter would not be the run the recipe describes; start it again with "
                  "another output_dir")


def recipe_problems(recipe: Recipe) -> list[tuple[str, str]]:
    """GRPO's recipe checks (the METHODS entry's `problems`)."""
    return grpo_problems(recipe.grpo, recipe.train.batch_size, recipe.train.grad_accum)


def run_grpo(recipe: Recipe, resume: bool = False) -> dict:
    """GRPO per the recipe; returns the run summary (also written to RUN/metrics.json). The set-up, the
    before/after scoring and the outputs are `medtune train`'s own steps (medtune.train.run). No resume."""
    from medtune.train import run as steps

    steps.apply_env(recipe)  # before the first import of torch
    _refuse(recipe, resume)
    from medtune.runfolder import RunFolder
    from medtune.train.methods import trainable_parameters
    from medtune.train.summary import write_outputs

    t_start = time.perf_counter()
    g = recipe.grpo
    run = RunFolder(recipe.output_dir)
    main = steps.prepare_folder(run, recipe, resume)

    # --- set up: device, questions, tokenizer, base model; then the policy and the prompts --------
    s, (gen, why), (dataset, too_long) = _set_up(recipe, steps)

    # --- the starting policy scored by the generate scorer, GRPO, the adapter saved ---------------
    baseline = steps.score_baseline(s, run, resume) if recipe.baseline_eval else None  # each process a share
    trainer = build_grpo_trainer(recipe, run, s.model, s.tokenizer, dataset, s.precision, s.backend,
                                 use_vllm=gen == "vllm")
    trainable, total = trainable_parameters(trainer.model)
    result, train_s = steps.train(trainer, run, resume)
    saved = save_adapter(trainer.model, s.tokenizer, run.adapter, write=main)
    trainer.accelerator.wait_for_everyone()

    # --- the trained policy scored the same way (each process a share); McNemar; the summary -------
    final = steps.score_final(trainer.model, s, run, saved)
    if not main:
        return {"rank": int(os.environ["RANK"]), "steps": result.global_step, "output": str(run)}
    comparison, log = _compare_and_plot(run, trainer, baseline, final)
    summary = _summary(trainer, result, g, log, baseline, final, comparison) | {
        "model": s.ref.name, "precision": s.precision, "generation_backend": {"choice": gen, "reason": why},
        "train_prompts": len(dataset), "prompts_too_long": too_long, "eval_questions": len(s.questions.evals),
        "split": s.questions.info, "train_seconds": train_s,
        "seconds_per_step": train_s / max(1, result.global_step),
        "trainable_parameters": trainable, "total_parameters": total, "output": str(saved),
        "eval_regime": {"scorer": "generate", "max_new_tokens": g.eval_max_new_tokens, "thinking": g.thinking,
                        "batch_size": g.eval_batch_size, "dtype": s.backend.dtype},
        "scoring": {"baseline": (baseline or {}).get("scoring"), "final": final.get("scoring")},
        "total_seconds": time.perf_counter() - t_start}
    write_outputs(recipe, s, run, summary)
    return summary


def _refuse(recipe: Recipe, resume: bool) -> None:
    """Stop before anything is set up: TRL missing, a resume asked for, or grpo settings that do not fit."""
    from medtune.config import ConfigError

    require_trl()
    if resume:
        raise MedtuneError(RESUME_REFUSED, field="--resume")
    problems = grpo_problems(recipe.grpo, recipe.train.batch_size, recipe.train.grad_accum)
    if problems:  # load_recipe checks these too; this is for recipes built in code
        raise ConfigError("; ".join(f"{k}: {msg}" for k, msg in problems))


def _set_up(recipe: Recipe, steps: Any) -> tuple[Any, tuple[str, str], tuple[Any, int]]:
    """`medtune train`'s set-up with the generative scorer's eval regime, then the policy and its prompts:
    (Setup, (generation backend, why), (prompt dataset, prompts left out as too long))."""
    from medtune.train.methods import get_method

    g = recipe.grpo
    s = steps.set_up(recipe, get_method(recipe.method))
    gen, why = generation_backend(s.backend.kind, vllm_importable(), g.generation_backend)
    s.eval_cfg = dataclasses.replace(s.eval_cfg, scorers=["generate"], batch_size=g.eval_batch_size,
                                     max_new_tokens=g.eval_max_new_tokens, thinking=g.thinking)
    dataset, too_long = grpo_dataset(s.questions.train, s.tokenizer, g)
    s.model = start_policy(s.model, recipe, g)
    s.model.eval()  # LoRA dropout off while the baseline generates
    print(f"grpo: {len(dataset)} training prompts ({too_long} longer than {g.max_prompt_length} tokens left out)"
          f"{' · from ' + g.from_adapter if g.from_adapter else ''} · {why}", flush=True)
    return s, (gen, why), (dataset, too_long)


def _compare_and_plot(run: Any, trainer: Any, baseline: dict | None, final: dict) -> tuple[dict | None, list[dict]]:
    """McNemar's before/after comparison (printed), and the per-step log plotted into the curves."""
    from medtune.train.rewards import plot_grpo, step_log
    from medtune.train.summary import compare_before_after

    comparison = compare_before_after(run, baseline)
    log = step_log(trainer.state.log_history)
    plot_grpo(log, run.curves, _accuracy(baseline), _accuracy(final))
    return comparison, log


def _summary(trainer: Any, result: Any, g: GrpoArgs, steps: list[dict], baseline: dict | None,
             final: dict, comparison: dict | None) -> dict:
    """The training side of metrics.json: steps, rewards and their tallies, before/after, the per-step log."""
    rewards = trainer.reward_funcs
    return {"method": "grpo", "from_adapter": g.from_adapter, "thinking": g.thinking, "steps": result.global_step,
            "train_loss": result.training_loss,
            "rewards": {"weights": dict(zip([f.__name__ for f in rewards], trainer.args.reward_weights)),
                        **rewards[0].tally.to_dict()},
            "baseline": generation_brief(baseline), "final": generation_brief(final), "compare": comparison,
            "log": steps}


def _accuracy(metrics: dict | None) -> float | None:
    return None if metrics is None else metrics["results"]["generate"]["accuracy"]


def generation_brief(metrics: dict | None) -> dict | None:
    """The generative scorer's accuracy, interval and unparseable/length counts, for the GRPO summary."""
    if metrics is None:
        return None
    r = metrics["results"]["generate"]
    keys = ("accuracy", "ci95", "unparseable", "unparseable_rate", "mean_new_tokens", "hit_max_new_tokens")
    return {k: r.get(k) for k in keys}

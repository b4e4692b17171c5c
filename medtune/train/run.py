"""`medtune train RECIPE [key=value ...]`: set up, score the base model, train, score, save.

`run_train` reads top to bottom like a single training script; each step is one helper below (the
summary and the files it ends with: medtune.train.summary), and the loop itself is the Hugging Face
Trainer (medtune.train.build.build_trainer). The reported eval
questions are scored twice only, before and after, through the same function with the same settings.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from medtune.errors import MedtuneError
from medtune.runfolder import RunFolder
from medtune.train.methods import Method, get_method
from medtune.train.summary import summarize, write_outputs
from medtune.train.trainset import Questions

if TYPE_CHECKING:
    from medtune.train.recipe import Recipe


@dataclass
class Setup:
    """Everything the run decided and loaded before training."""

    method: Method
    backend: Any
    precision: str
    questions: Questions
    ref: Any
    tokenizer: Any
    template: str
    model: Any
    eval_cfg: Any


def run_train(recipe: Recipe, resume: bool = False) -> dict:
    """Train per the recipe; returns the run summary (also written to RUN/metrics.json)."""
    apply_env(recipe)  # before the first import of torch, for every caller
    method = get_method(recipe.method)
    if method.run_function() is not None:  # a method that owns its whole run (grpo)
        return method.run_function()(recipe, resume=resume)
    t_start = time.perf_counter()
    run = RunFolder(recipe.output_dir)
    main = prepare_folder(run, recipe, resume)
    s = set_up(recipe, method)
    baseline = score_baseline(s, run, resume) if recipe.baseline_eval else None  # each process scores a share
    trainer, examples = make_trainer(recipe, s, run)
    result, train_s = train(trainer, run, resume)
    saved = save_trained(trainer, s, run)
    final = score_final(trainer.model, s, run, saved)
    if not main:
        return {"rank": int(os.environ["RANK"]), "steps": result.global_step, "output": str(run)}
    summary = summarize(recipe, s, run, baseline, final, trainer, result, examples, saved,
                        train_s=train_s, total_s=time.perf_counter() - t_start)
    write_outputs(recipe, s, run, summary)
    return summary


def first_process() -> bool:
    """Whether this is the process that writes and prints (rank 0 under accelerate launch / torchrun)."""
    return int(os.environ.get("RANK", "0")) == 0


def apply_env(recipe: Recipe) -> None:
    """The recipe's `env:` variables, set before torch is imported (medtune.backend.apply_env)."""
    from medtune.backend import apply_env as set_variables

    for warning in set_variables(recipe.env):
        print(f"medtune: warning: {warning}", file=sys.stderr)


def _check_resume(run: RunFolder, recipe: Recipe) -> None:
    if not run.recipe.is_file():
        raise MedtuneError("nothing to resume: no recipe.yaml in the run folder", path=str(run), field="--resume")
    old = yaml.safe_load(run.recipe.read_text("utf-8"))
    new = recipe.to_dict()
    diffs = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    if diffs:
        raise MedtuneError(f"the run folder was made with another recipe (differs in: {', '.join(diffs)}); "
                           "resume with the same recipe, or choose a new output_dir", path=str(run.recipe))


def prepare_folder(run: RunFolder, recipe: Recipe, resume: bool) -> bool:
    """Check resume/overwrite, write recipe.yaml, seed; returns whether this process is rank 0."""
    from transformers import set_seed

    main = first_process()
    if resume:
        _check_resume(run, recipe)
    elif run.has_checkpoints():
        raise MedtuneError("this run folder already has checkpoints; pass --resume to continue it, or choose "
                           "another output_dir", path=str(run), field="output_dir")
    run.root.mkdir(parents=True, exist_ok=True)
    if main:
        run.write_text(run.recipe, yaml.safe_dump(recipe.to_dict(), sort_keys=False))
    set_seed(recipe.train.seed)
    return main


def set_up(recipe: Recipe, method: Method) -> Setup:
    """Backend and precision, questions, and the runtime (tokenizer, template, base model) from `load_runtime`."""
    from medtune.backend import default_batch_size, select_backend
    from medtune.eval.run import EvalConfig
    from medtune.eval.runtime import load_runtime
    from medtune.train import methods
    from medtune.train.trainset import load_questions

    precision = methods.precision_for(select_backend(), recipe.train.precision)
    backend = select_backend(dtype=method.load_dtype(precision))
    if method.check:
        method.check(backend)
    if recipe.train.fp8:
        methods.check_fp8(backend)
    q = load_questions(recipe)
    rt = load_runtime(runtime_spec(recipe, method, precision))
    print(f"medtune train: {method.name} on {rt.ref.name} · {len(q.train)} training and {len(q.evals)} eval "
          f"questions ({q.info['how']})" + (f" · {len(q.selection)} selection questions cut from the training "
                                           f"side" if q.selection else "") + f" · {backend.kind} {precision}",
          flush=True)
    eval_cfg = EvalConfig(data=list(recipe.data.eval or recipe.data.train), model=recipe.model.name,
                          scorers=[recipe.train.eval_scorer], template=rt.template, seed=recipe.train.seed,
                          permute=recipe.train.eval_permute,
                          batch_size=default_batch_size(backend),
                          progress=sys.stderr.isatty())  # under a launcher, every process scores a share
    return Setup(method, backend, precision, q, rt.ref, rt.tokenizer, rt.template, rt.model, eval_cfg)


def runtime_spec(recipe: Recipe, method: Method, precision: str, device: str | None = None) -> Any:
    """What `load_runtime` builds for a training run: the recipe's model in the method's load dtype, with its
    quantization, attention kernel and model kind."""
    from medtune.backend import select_backend
    from medtune.eval.runtime import RuntimeSpec
    from medtune.train import methods

    dtype = method.load_dtype(precision)
    return RuntimeSpec(model=recipe.model.name, trust_remote_code=recipe.model.trust_remote_code, device=device,
                       dtype=dtype, template=recipe.data.template, scorer=recipe.train.eval_scorer,
                       quantization=method.quantization() if method.quantization else None,
                       attn_implementation=methods.attention_for(recipe, select_backend(device, dtype=dtype)),
                       encoder=method.encoder, who=f"method {method.name}")


def load_train_eval_questions(recipe: Recipe) -> Questions:
    """medtune.train.trainset.load_questions: kept only for medtune/bench/train.py (item 5's file)."""
    from medtune.train.trainset import load_questions

    return load_questions(recipe)


def score(s: Setup, folder: RunFolder, model: Any, merged: bool = False, cfg: dict | None = None,
          calibrate: bool = False) -> dict:
    """The reported eval questions scored into `folder`: the one scoring call for before and after, same
    dtype, batch size and no autocast; the regime is recorded in the metrics under "scoring". `calibrate`:
    fit the confidence temperature and abstention threshold on the selection split (never reported)."""
    import torch

    from medtune.eval.run import evaluate_items

    q = s.questions
    metrics = evaluate_items(dataclasses.replace(s.eval_cfg, out=str(folder), **(cfg or {})), q.evals, q.report,
                             model=model, tokenizer=s.tokenizer, calibration=list(q.selection) if calibrate else None)
    metrics["scoring"] = {"dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
                          "autocast": torch.is_autocast_enabled(), "batch_size": s.eval_cfg.batch_size,
                          "merged": merged}
    return metrics


def score_baseline(s: Setup, run: RunFolder, resume: bool) -> dict:
    """The base model on the eval questions (read back when resuming a run that scored it)."""
    from medtune.eval.run import format_table

    if resume and run.baseline.metrics.is_file():
        return run.read_json(run.baseline.metrics)
    baseline = score(s, run.baseline, s.model)
    if first_process():
        print(format_table(baseline, "before training:"), flush=True)
    return baseline


def make_trainer(recipe: Recipe, s: Setup, run: RunFolder) -> tuple[Any, list[dict]]:
    """Adapt the model, tokenize the training questions, build the Trainer."""
    from medtune.train import methods
    from medtune.train.build import build_trainer
    from medtune.train.report import tensorboard_callback
    from medtune.train.trainset import cached_examples

    s.model = methods.prepare_for_training(s.model, recipe, s.backend)
    trainable, total = methods.trainable_parameters(s.model)
    print(f"trainable parameters: {trainable:,} of {total:,} ({trainable / total:.2%})", flush=True)
    examples = cached_examples(s.questions.train, s.tokenizer, recipe, s.template, s.method.encoder)
    trainer = build_trainer(recipe, s.model, s.tokenizer, examples, backend=s.backend, precision=s.precision,
                            template=s.template, encoder=s.method.encoder, folder=run.checkpoints,
                            selection=s.questions.selection, callbacks=[tensorboard_callback(run.tensorboard)],
                            letters=[it.answer_index for it in s.questions.train])
    return trainer, examples


def train(trainer: Any, run: RunFolder, resume: bool) -> tuple[Any, float]:
    """trainer.train(), from the last complete checkpoint when resuming; returns (result, seconds)."""
    from medtune.train.trainer import resume_checkpoint

    ckpt = resume_checkpoint(trainer, run.checkpoints) if resume else None
    if resume and first_process():
        print(f"resuming from {ckpt}" if ckpt else "no complete checkpoint yet: starting from step 0", flush=True)
    t0 = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=str(ckpt) if ckpt else None)
    return result, time.perf_counter() - t0


def save_trained(trainer: Any, s: Setup, run: RunFolder) -> Any:
    """The adapter (or the whole model) and the tokenizer, written atomically by the first process; the
    others wait for it (they score the saved result's share next)."""
    from medtune.io import replace_dir

    folder = run.trained(s.method.saves == "model")
    if first_process():
        with replace_dir(folder) as staging:
            trainer.model.save_pretrained(staging)
            s.tokenizer.save_pretrained(staging)
    trainer.accelerator.wait_for_everyone()
    return folder


def score_final(model: Any, s: Setup, run: RunFolder, saved: Any) -> dict:
    """The trained model on the eval questions, scored as the baseline was. An adapter over fp32 weights
    is folded in (exact to rounding, and faster); over bf16/fp16 weights it stays unmerged, since a merge
    in half precision rounds small updates away."""
    import torch

    from medtune.eval.run import format_table
    from medtune.models import merge_for_inference

    model.eval()
    merged = next(model.parameters()).dtype == torch.float32 and merge_for_inference(model)
    trained = {"adapter": str(saved)} if saved.name == "adapter" else {"model": str(saved)}  # the manifest hashes it
    final = score(s, run.final, model, merged=merged, cfg=trained, calibrate=True)
    if first_process():
        print(format_table(final, "after training:"), flush=True)
    return final

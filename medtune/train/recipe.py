"""The training recipe: one dataclass per section, loaded from YAML with `a.b=v` overrides, checked.

Every field has its default and its help line in one place (`opt`); `medtune train --help-recipe`
lists them. Unknown keys, wrong types and cross-field problems come back together in one
`ConfigError` naming the file, the line and the field of each.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medtune.config import ConfigError, apply_overrides, build, describe, load_yaml, opt
from medtune.errors import did_you_mean
from medtune.train.grpo import GrpoArgs
from medtune.train.methods import METHODS

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass
class ModelArgs:
    name: str = opt("smollm2-135m-instruct", "embedded short name, local folder or Hub id")
    trust_remote_code: bool = opt(False, "allow the model's own Python code from the Hub")
    attn_implementation: str | None = opt(None, "sdpa, eager or flash_attention_2 (default: transformers' choice)")
    gradient_checkpointing: bool = opt(False, "recompute activations in the backward pass to save memory")


@dataclass
class DataArgs:
    train: list[str] = opt(["medmcqa-dev"], "training sources: files, folders, built-in names or hf:ID:SPLIT")
    eval: list[str] = opt([], "separate eval sources; empty: hold out eval_size questions of `train`")
    max_rows: int | None = opt(None, "use only the first N rows of the training sources, before the split")
    eval_size: int | None = opt(500, "questions held out of `train` by a stable hash split")
    split_seed: int = opt(0, "seed of the hash split")
    selection_size: int = opt(200, "with train.eval_steps: questions cut from the training side (stable hash "
                                   "split, at most a fifth) to pick the best checkpoint and stop early on; "
                                   "the reported eval set is scored only before and after")
    shuffle_options: bool = opt(True, "training questions' options in a stable random order, the answer moved "
                                      "with its option, so no letter is learned as a prior (never for evaluation)")
    max_train: int | None = opt(None, "use only the first N training questions after the split")
    max_eval: int | None = opt(None, "use only the first N eval questions")
    format: str | None = opt(None, "force a source format (default: detected)")
    cop_base: int | None = opt(None, "0 or 1 when answer indices cannot be told apart")
    on_bad_row: str = opt("error", "error or skip")
    template: str = opt("auto", "prompt template: auto, chat, plain, hackathon, lm-eval or a template .yaml file")
    target: str = opt("letter", "what the model learns to write: letter, letter_text, letter_text_explanation")
    max_length: int = opt(512, "tokens per example; prompts are cut from the left, never the answer")
    loss_on: str = opt("answer", "answer: loss on the answer tokens only; all: on the whole sequence")
    cache: bool = opt(True, "reuse the records and tokenized examples an earlier run cached for the same "
                            "data, options, tokenizer, template and length (medtune's cache folder; safe "
                            "to delete); false: read and tokenize again")


@dataclass
class LoraArgs:
    r: int = opt(16, "LoRA rank")
    alpha: int = opt(32, "LoRA alpha (scale = alpha / r)")
    dropout: float = opt(0.05, "dropout on the LoRA input")
    target_modules: Any = opt("all-linear", "'all-linear' or a list of module names such as [q_proj, v_proj]")
    layers: Any = opt(None, "adapt only these transformer layers: 'top:N' (the last N) or a list of indices; "
                            "the backward pass stops below the lowest one. None: every layer")


@dataclass
class TrainArgs:
    epochs: float = opt(1.0, "passes over the training questions (ignored when max_steps > 0)")
    max_steps: int = opt(-1, "stop after this many optimizer steps (-1: use epochs)")
    lr: float = opt(2e-4, "peak learning rate")
    batch_size: int = opt(8, "examples per device per micro-batch")
    grad_accum: int = opt(1, "micro-batches per optimizer step")
    scheduler: str = opt("cosine", "learning-rate schedule: cosine, linear or constant_with_warmup")
    warmup_ratio: float = opt(0.05, "fraction of steps spent warming up")
    weight_decay: float = opt(0.0, "AdamW weight decay")
    max_grad_norm: float = opt(1.0, "gradient clipping norm")
    precision: str = opt("auto", "auto (bf16 where supported, fp16 on older GPUs, fp32 on CPU), fp32, bf16 or fp16")
    packing: bool = opt(False, "padding-free batches: sequences concatenated, positions restart per example")
    group_by_length: bool = opt(True, "batch examples of similar length to waste less padding")
    balance_letters: bool = opt(True, "every optimizer step holds each gold answer letter equally often (as far "
                                      "as the data allows), so no step pushes the model toward a letter")
    eval_steps: int | None = opt(None, "evaluate accuracy every N steps (default: at the end only)")
    save_steps: int = opt(100, "write a checkpoint every N steps")
    save_total_limit: int | None = opt(3, "keep at most N checkpoints (the best is always kept)")
    early_stopping_patience: int | None = opt(None, "stop after N evaluations without a better accuracy")
    eval_scorer: str = opt("letter", "scorer for accuracy during and after training: letter or cloze")
    eval_permute: str | None = opt(None, "also score the reported questions before and after training with their "
                                         "options reordered: cyclic or N orders (as medtune eval --permute)")
    liger: bool = opt(True, "Liger kernels (fused linear cross-entropy, RMSNorm, RoPE, SwiGLU) on a GPU when "
                            "liger-kernel is installed; ignored otherwise")
    fp8: bool = opt(False, "FP8 matmuls through torchao's float8 training (H100/MI300-class GPUs); opt-in")
    logging_steps: int = opt(5, "log loss every N steps (TensorBoard and the terminal)")
    seed: int = opt(0, "the one seed for initialisation, data order and dropout")


@dataclass
class Recipe:
    method: str = opt("lora", "lora, dora, full, qlora, multiple_choice or grpo")
    output_dir: str = opt("runs/train", "run folder: adapter, checkpoints, logs, metrics")
    baseline_eval: bool = opt(True, "score the untrained model on the eval split first, for the comparison")
    env: dict = opt({}, "environment variables set before torch is imported")
    model: ModelArgs = field(default_factory=ModelArgs)
    data: DataArgs = field(default_factory=DataArgs)
    lora: LoraArgs = field(default_factory=LoraArgs)
    train: TrainArgs = field(default_factory=TrainArgs)
    grpo: GrpoArgs = field(default_factory=GrpoArgs)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# defaults that differ by method (a recipe or an override still wins)
METHOD_DEFAULTS = {
    "multiple_choice": {"model": {"name": "minilm-l6"}, "data": {"max_length": 256},
                        "train": {"lr": 2e-5, "batch_size": 32, "epochs": 3.0}},
}


RECIPES = Path(__file__).resolve().parent.parent / "configs"


def find_recipe(name: str) -> Path:
    """A recipe path as given, or a shipped recipe by name (`demo-cpu` -> configs/demo-cpu.yaml)."""
    path = Path(name)
    if path.is_file():
        return path
    shipped = RECIPES / (name if name.endswith(".yaml") else f"{name}.yaml")
    if shipped.is_file() and not path.parent.name:
        return shipped
    names = sorted(p.stem for p in RECIPES.glob("*.yaml"))
    raise ConfigError(f"no such recipe file; shipped recipes: {', '.join(names)}{did_you_mean(path.stem, names)}",
                      path=name)


def load_recipe(path: str | None, overrides: list[str] | None = None) -> Recipe:
    """A validated Recipe from a YAML file (or the defaults) and `key=value` overrides."""
    errors: list[str] = []
    if path:
        path = str(find_recipe(path))
    data, lines = (load_yaml(Path(path), opaque=("env",)) if path else ({}, {}))
    overridden = apply_overrides(data, list(overrides or []), errors)
    for section, values in METHOD_DEFAULTS.get(data.get("method"), {}).items():
        if isinstance(data.get(section, {}), dict):
            data[section] = {**values, **(data.get(section) or {})}
    src = str(path) if path else "(defaults)"

    def where(dotted: str) -> str:
        if dotted in overridden:
            return "command line: "
        line = lines.get(dotted)
        return f"{src}:{line}: " if line else ("" if not path else f"{src}: ")

    recipe = build(Recipe, data, "", where, errors)
    errors.extend(f"{where(k)}{k}: {msg}" for k, msg in validate(recipe))
    if errors:
        raise ConfigError(f"{len(errors)} problem{'s' if len(errors) > 1 else ''} in the recipe: "
                          + "; ".join(errors))
    return recipe


def validate(r: Recipe) -> list[tuple[str, str]]:
    """Cross-field checks: (dotted key, problem) pairs."""
    from medtune.data.prompts import TARGETS, TEMPLATES
    from medtune.eval.scorers import training_scorers

    out = []

    def choice(key: str, value: Any, allowed: tuple) -> None:
        if value not in allowed:
            out.append((key, f"{value!r} is not one of {', '.join(map(str, allowed))}"
                             f"{did_you_mean(str(value), allowed)}"))

    choice("method", r.method, tuple(METHODS))
    choice("train.precision", r.train.precision, PRECISIONS)
    choice("train.scheduler", r.train.scheduler, ("cosine", "linear", "constant_with_warmup", "constant"))
    choice("train.eval_scorer", r.train.eval_scorer, training_scorers())
    if not str(r.data.template).endswith((".yaml", ".yml")):
        choice("data.template", r.data.template, TEMPLATES)
    elif not Path(r.data.template).is_file():
        out.append(("data.template", f"no such template file: {r.data.template}"))
    choice("data.target", r.data.target, TARGETS)
    choice("data.loss_on", r.data.loss_on, ("answer", "all"))
    choice("data.on_bad_row", r.data.on_bad_row, ("error", "skip"))
    for key, value in (("train.lr", r.train.lr), ("train.batch_size", r.train.batch_size),
                       ("train.grad_accum", r.train.grad_accum), ("lora.r", r.lora.r),
                       ("data.max_length", r.data.max_length), ("train.save_steps", r.train.save_steps),
                       ("data.selection_size", r.data.selection_size)):
        if value <= 0:
            out.append((key, f"must be positive, got {value}"))
    if not 0 <= r.lora.dropout < 1:
        out.append(("lora.dropout", f"must be in [0, 1), got {r.lora.dropout}"))
    if not 0 <= r.train.warmup_ratio < 1:
        out.append(("train.warmup_ratio", f"must be in [0, 1), got {r.train.warmup_ratio}"))
    if r.train.max_steps <= 0 and r.train.epochs <= 0:
        out.append(("train.epochs", "set epochs > 0 or max_steps > 0"))
    if not r.data.train:
        out.append(("data.train", "name at least one training source"))
    if not r.data.eval and not r.data.eval_size:
        out.append(("data.eval_size", "with no data.eval sources, hold some questions out (eval_size > 0)"))
    if r.train.early_stopping_patience and not r.train.eval_steps:
        out.append(("train.early_stopping_patience", "needs train.eval_steps (evaluation during training)"))
    if r.train.eval_steps and r.train.save_steps % r.train.eval_steps:
        out.append(("train.save_steps", f"must be a multiple of train.eval_steps ({r.train.eval_steps}) so "
                                        "that the best checkpoint by accuracy can be kept"))
    if METHODS.get(r.method) is not None and METHODS[r.method].saves == "adapter":
        tm = r.lora.target_modules
        if not (tm == "all-linear" or (isinstance(tm, list) and tm and all(isinstance(x, str) for x in tm))):
            out.append(("lora.target_modules", f"expected 'all-linear' or a list of names, got {tm!r}"))
    if METHODS.get(r.method) is not None:
        out.extend(METHODS[r.method].recipe_problems(r))
    for k, v in r.env.items():
        if not isinstance(v, (str, int, float)):
            out.append((f"env.{k}", f"expected a string value, got {v!r}"))
    return out


def describe_recipe() -> list[str]:
    """Every recipe key with its default and help, for --help-recipe."""
    return describe(Recipe)

"""Typed recipes: YAML -> `a.b=v` overrides -> dataclasses -> validation.

One dataclass per section; every field has its default and its help in one place (the `help`
metadata). Unknown keys, wrong types and cross-field problems are collected into one
`ConfigError` that names the file, the line and the field of each ("did you mean ..." included).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medtune.errors import MedtuneError, did_you_mean

METHODS = ("lora", "dora", "full", "qlora", "multiple_choice")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def opt(default: Any, help: str, **kw: Any) -> Any:
    """A field with its default and its help line."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help}, **kw)
    return field(default=default, metadata={"help": help}, **kw)


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
    max_train: int | None = opt(None, "use only the first N training questions after the split")
    max_eval: int | None = opt(None, "use only the first N eval questions")
    format: str | None = opt(None, "force a source format (default: detected)")
    cop_base: int | None = opt(None, "0 or 1 when answer indices cannot be told apart")
    on_bad_row: str = opt("error", "error or skip")
    template: str = opt("auto", "prompt template: auto, chat, plain or hackathon")
    target: str = opt("letter", "what the model learns to write: letter, letter_text, letter_text_explanation")
    max_length: int = opt(512, "tokens per example; prompts are cut from the left, never the answer")
    loss_on: str = opt("answer", "answer: loss on the answer tokens only; all: on the whole sequence")


@dataclass
class LoraArgs:
    r: int = opt(16, "LoRA rank")
    alpha: int = opt(32, "LoRA alpha (scale = alpha / r)")
    dropout: float = opt(0.05, "dropout on the LoRA input")
    target_modules: Any = opt("all-linear", "'all-linear' or a list of module names such as [q_proj, v_proj]")


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
    eval_steps: int | None = opt(None, "evaluate accuracy every N steps (default: at the end only)")
    save_steps: int = opt(100, "write a checkpoint every N steps")
    save_total_limit: int | None = opt(3, "keep at most N checkpoints (the best is always kept)")
    early_stopping_patience: int | None = opt(None, "stop after N evaluations without a better accuracy")
    eval_scorer: str = opt("letter", "scorer for accuracy during and after training: letter or cloze")
    liger: bool = opt(True, "Liger kernels (fused linear cross-entropy, RMSNorm, RoPE, SwiGLU) on a GPU when "
                            "liger-kernel is installed; ignored otherwise")
    fp8: bool = opt(False, "FP8 matmuls through torchao's float8 training (H100/MI300-class GPUs); opt-in")
    logging_steps: int = opt(5, "log loss every N steps (TensorBoard and the terminal)")
    seed: int = opt(0, "the one seed for initialisation, data order and dropout")


@dataclass
class Recipe:
    method: str = opt("lora", "lora, dora, full, qlora or multiple_choice")
    output_dir: str = opt("runs/train", "run folder: adapter, checkpoints, logs, metrics")
    baseline_eval: bool = opt(True, "score the untrained model on the eval split first, for the comparison")
    env: dict = opt({}, "environment variables set before torch is imported")
    model: ModelArgs = field(default_factory=ModelArgs)
    data: DataArgs = field(default_factory=DataArgs)
    lora: LoraArgs = field(default_factory=LoraArgs)
    train: TrainArgs = field(default_factory=TrainArgs)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class ConfigError(MedtuneError):
    """Every problem found in a recipe, in one error."""


SECTIONS = {"model": ModelArgs, "data": DataArgs, "lora": LoraArgs, "train": TrainArgs}


def _load_yaml(path: Path) -> tuple[dict, dict[str, int]]:
    """The YAML mapping and the line of each dotted key."""
    import yaml

    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError("no such recipe file", path=str(path)) from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"invalid UTF-8 byte at offset {err.start}", path=str(path)) from None
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise ConfigError(f"invalid YAML: {getattr(err, 'problem', err)}", path=str(path),
                          line=mark.line + 1 if mark else None) from None
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise ConfigError("a recipe is a YAML mapping (key: value lines)", path=str(path), line=1)
    lines: dict[str, int] = {}

    def walk(n: Any, prefix: str) -> None:
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                key = f"{prefix}{k.value}"
                lines[key] = k.start_mark.line + 1
                if isinstance(v, yaml.MappingNode) and key != "env":
                    walk(v, key + ".")
    walk(node, "")
    return data, lines


def _parse_value(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(data: dict, overrides: list[str], errors: list[str]) -> set[str]:
    """Apply `a.b=value` strings (values parsed as YAML scalars or lists) in place; return their keys."""
    keys = set()
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            errors.append(f"override {item!r}: expected key=value, e.g. train.lr=1e-4")
            continue
        parts = key.strip().split(".")
        node = data
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                errors.append(f"override {item!r}: {p} is not a section")
                break
        else:
            node[parts[-1]] = _parse_value(value)
            keys.add(key.strip())
    return keys


def _check_type(value: Any, annotation: Any) -> tuple[bool, Any]:
    """Whether `value` fits the annotation (ints accepted for floats, one string for a list)."""
    if annotation is Any:
        return True, value
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if arg is type(None) and value is None:
                return True, None
        for arg in typing.get_args(annotation):
            if arg is not type(None):
                ok, v = _check_type(value, arg)
                if ok:
                    return True, v
        return False, value
    if origin is list:
        if isinstance(value, str):
            return True, [value]
        return isinstance(value, list), value
    if annotation is dict or origin is dict:
        return isinstance(value, dict), value
    if annotation is bool:
        return isinstance(value, bool), value
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, float(value)
        if isinstance(value, str):  # YAML 1.1 reads 2e-4 (no dot) as a string
            try:
                return True, float(value)
            except ValueError:
                pass
        return False, value
    if annotation is str:
        return isinstance(value, str), value
    return True, value


_TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "text"}


def _type_word(annotation: Any) -> str:
    args = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    words = [_TYPE_WORDS.get(a, "a list" if typing.get_origin(a) is list else getattr(a, "__name__", str(a)))
             for a in args]
    return " or ".join(words) + (" or null" if type(None) in typing.get_args(annotation) else "")


def _build(cls: type, data: dict, prefix: str, where: Any, errors: list[str]) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.name not in SECTIONS]
    kwargs = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in hints or (prefix == "" and key in SECTIONS):
            if prefix == "" and key in SECTIONS:
                continue
            valid = ", ".join(names)
            errors.append(f"{where(dotted)}{dotted}: unknown key{did_you_mean(str(key), names)}; "
                          f"valid keys: {valid}")
            continue
        ok, coerced = _check_type(value, hints[key])
        if not ok:
            errors.append(f"{where(dotted)}{dotted}: expected {_type_word(hints[key])}, got {value!r}")
            continue
        kwargs[key] = coerced
    return cls(**kwargs)


# defaults that differ by method (a recipe or an override still wins)
METHOD_DEFAULTS = {
    "multiple_choice": {"model": {"name": "minilm-l6"}, "data": {"max_length": 256},
                        "train": {"lr": 2e-5, "batch_size": 32, "epochs": 3.0}},
}


RECIPES = Path(__file__).resolve().parent / "configs"


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
    data, lines = (_load_yaml(Path(path)) if path else ({}, {}))
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

    sections = {}
    for name, cls in SECTIONS.items():
        value = data.get(name, {})
        if value is None:
            value = {}
        if not isinstance(value, dict):
            errors.append(f"{where(name)}{name}: expected a section (key: value lines), got {value!r}")
            value = {}
        sections[name] = _build(cls, value, f"{name}.", where, errors)
    top = _build(Recipe, data, "", where, errors)
    recipe = dataclasses.replace(top, **sections)
    errors.extend(f"{where(k)}{k}: {msg}" for k, msg in validate(recipe))
    if errors:
        raise ConfigError(f"{len(errors)} problem{'s' if len(errors) > 1 else ''} in the recipe: "
                          + "; ".join(errors))
    return recipe


def validate(r: Recipe) -> list[tuple[str, str]]:
    """Cross-field checks: (dotted key, problem) pairs."""
    from medtune.data.prompts import TARGETS, TEMPLATES

    out = []

    def choice(key: str, value: Any, allowed: tuple) -> None:
        if value not in allowed:
            out.append((key, f"{value!r} is not one of {', '.join(map(str, allowed))}"
                             f"{did_you_mean(str(value), allowed)}"))

    choice("method", r.method, METHODS)
    choice("train.precision", r.train.precision, PRECISIONS)
    choice("train.scheduler", r.train.scheduler, ("cosine", "linear", "constant_with_warmup", "constant"))
    choice("train.eval_scorer", r.train.eval_scorer, ("letter", "cloze"))
    choice("data.template", r.data.template, TEMPLATES)
    choice("data.target", r.data.target, TARGETS)
    choice("data.loss_on", r.data.loss_on, ("answer", "all"))
    choice("data.on_bad_row", r.data.on_bad_row, ("error", "skip"))
    for key, value in (("train.lr", r.train.lr), ("train.batch_size", r.train.batch_size),
                       ("train.grad_accum", r.train.grad_accum), ("lora.r", r.lora.r),
                       ("data.max_length", r.data.max_length), ("train.save_steps", r.train.save_steps)):
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
    if r.method in ("lora", "dora", "qlora"):
        tm = r.lora.target_modules
        if not (tm == "all-linear" or (isinstance(tm, list) and tm and all(isinstance(x, str) for x in tm))):
            out.append(("lora.target_modules", f"expected 'all-linear' or a list of names, got {tm!r}"))
    for k, v in r.env.items():
        if not isinstance(v, (str, int, float)):
            out.append((f"env.{k}", f"expected a string value, got {v!r}"))
    return out


def describe(cls: type = Recipe, prefix: str = "") -> list[str]:
    """`key (default): help` lines for every field, for --help-recipe."""
    out = []
    for f in dataclasses.fields(cls):
        if f.name in SECTIONS and prefix == "":
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore
        out.append(f"{prefix}{f.name} ({default!r}): {f.metadata.get('help', '')}")
    if prefix == "":
        for name, sub in SECTIONS.items():
            out.extend(describe(sub, f"{name}."))
    return out

"""`medtune eval`: score a model on a benchmark and write metrics.json and predictions.jsonl."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Sequence

from medtune.config import opt
from medtune.data.schema import MCQItem
from medtune.errors import MedtuneError
from medtune.eval import robustness
from medtune.eval.runtime import Runtime, RuntimeSpec, load_runtime
from medtune.eval.scorers import SCORERS, ScorerOptions, ScorerOutput, encoder_scorer, get_scorer, scorer_for
from medtune.models.devicemap import placement

# the result names each scorer reports ("choice": an encoder's multiple-choice head)


@dataclass
class EvalConfig:
    """Everything `medtune eval` needs; the CLI flags of the same names fill it."""

    data: list[str] = opt([], "questions to score: files, folders, built-in names (medmcqa-dev) or hf:ID:SPLIT")
    model: str | None = opt(None, "embedded short name, local folder or Hub id (default: the embedded model)")
    adapter: str | None = opt(None, "a PEFT adapter folder to apply to the model")
    out: str | None = opt(None, "folder for metrics.json and predictions.jsonl")
    scorers: list[str] = opt(["letter"], "scorers to run, the first is the headline: letter, cloze, generate")
    template: str = opt("auto", "prompt template: auto, chat, plain, hackathon, lm-eval or a template .yaml file")
    limit: int | None = opt(None, "score only the first N questions")
    batch_size: int | None = opt(None, "questions per forward pass (default: by backend)")
    max_length: int | None = opt(None, "longest context in tokens; longer ones are cut from the left "
                                       "(default: the model's)")
    seed: int = opt(0, "random seed")
    device: str | None = opt(None, "cpu, cuda, cuda:N, mps (default: the best available)")
    device_map: str | None = opt(None, "split a model larger than one device across the GPUs, CPU memory and "
                                       "disk (accelerate big-model inference): auto, balanced, balanced_low_0, "
                                       "sequential")
    max_memory: list[str] = opt([], "with --device-map: each device's budget, e.g. 0=70GiB 1=70GiB cpu=200GiB "
                                    "(what does not fit goes to disk)")
    dtype: str = opt("auto", "weights' precision: auto, bf16, fp16 or fp32 (as train.precision spells them)")
    trust_remote_code: bool = opt(False, "allow the model's own Python code from the Hub")
    progress: bool = opt(True, "show a progress bar")
    max_new_tokens: int = opt(256, "generate scorer: the longest answer in tokens")
    thinking: bool = opt(False, "generate scorer: let a thinking model think (Qwen3 enable_thinking)")
    load_options: Any = opt(None, "medtune.data.sources.LoadOptions; None: defaults")
    permute: str | None = opt(None, "also score every question with its options reordered, each order mapped back: "
                                    "cyclic (n rotations for n options) or N (the original and N-1 seeded "
                                    "random orders)")
    debias: str | None = opt(None, "letter-bias correction without labels: pride (a prior over letters estimated "
                                   "on --debias-fraction of the questions under cyclic rotations, divided out of "
                                   "the others' probabilities)")
    debias_fraction: float = opt(0.05, "share of the questions (seeded by --seed) that estimate the --debias prior; "
                                       "they are left out of the raw vs debiased comparison")
    calibrate_on: str | None = opt(None, "questions the report never sees (file, folder or built-in name) to fit "
                                         "the confidence temperature and abstention threshold on")
    target_accuracy: float = opt(0.8, "the accuracy the abstention threshold must reach on the calibration "
                                      "questions")
    distributed: bool = opt(True, "under accelerate launch / torchrun, split the questions between the "
                                  "processes (False: this process scores them all)")

    def __post_init__(self) -> None:
        for s in self.scorers:
            get_scorer(s)
        if self.limit is not None and self.limit < 1:
            raise MedtuneError(f"must be a positive number of questions, got {self.limit}", field="--limit")
        if self.batch_size is not None and self.batch_size < 1:
            raise MedtuneError(f"must be at least 1, got {self.batch_size}", field="--batch-size")
        if self.max_new_tokens < 1:
            raise MedtuneError(f"must be at least 1, got {self.max_new_tokens}", field="--max-new-tokens")
        placement(self.device_map, self.max_memory)
        from medtune.eval.bias import DEBIAS_METHODS
        from medtune.eval.permute import parse_permute

        self.permute = parse_permute(self.permute)
        if self.debias is not None and self.debias not in DEBIAS_METHODS:
            raise MedtuneError(f"unknown method {self.debias!r}; choose {', '.join(DEBIAS_METHODS)}", field="--debias")
        if not 0 < self.debias_fraction < 1:
            raise MedtuneError(f"must be between 0 and 1, got {self.debias_fraction}", field="--debias-fraction")
        if not 0 < self.target_accuracy <= 1:
            raise MedtuneError(f"must be in (0, 1], got {self.target_accuracy}", field="--target-accuracy")


def run_scorer(model: Any, tokenizer: Any, items: Sequence[MCQItem], scorer: str, template: Any, *,
               batch_size: int, device: str, max_length: int | None = None, progress: Any = False,
               processes: tuple[int, int] = (0, 1), options: ScorerOptions | None = None) -> ScorerOutput:
    """Score items with the named scorer (an encoder with a multiple-choice head always uses `choice`)."""
    from medtune.eval.choice import is_multiple_choice

    entry = scorer_for(scorer, is_multiple_choice(model))
    return entry.run(model, tokenizer, items, template, batch_size=batch_size, device=device,
                     max_length=max_length, progress=progress, processes=processes, options=options)


def score_items(model: Any, tokenizer: Any, items: Sequence[MCQItem], scorer: str, template: Any, *,
                batch_size: int, device: str, max_length: int | None = None, progress: bool = False,
                processes: tuple[int, int] = (0, 1)) -> tuple[dict[str, list[list[float]]], int]:
    """Option scores per result name (e.g. letter; cloze, cloze_norm, cloze_mean), and how many
    contexts were truncated. `processes`: (rank, world) to split the questions between processes."""
    out = run_scorer(model, tokenizer, items, scorer, template, batch_size=batch_size, device=device,
                     max_length=max_length, progress=progress, processes=processes)
    return out.scores, out.truncated


def load_items(cfg: EvalConfig) -> tuple[list[MCQItem], Any]:
    """Load the benchmark named by the config, honouring --limit (the first N questions)."""
    from medtune.data.sources import load_benchmark

    items, report = load_benchmark(cfg.data, cfg.load_options)
    if cfg.limit is not None:
        items = items[: cfg.limit]
    return items, report


def load_for_eval(cfg: EvalConfig, model: Any = None, tokenizer: Any = None, quiet: bool = False) -> Runtime:
    """The configured model and tokenizer (or the ones given), on the configured backend (`load_runtime`)."""
    spec = RuntimeSpec(model=cfg.model, adapter=cfg.adapter, trust_remote_code=cfg.trust_remote_code,
                       device=cfg.device, dtype=cfg.dtype, template=cfg.template, scorer=cfg.scorers[0],
                       place=placement(cfg.device_map, cfg.max_memory))
    return load_runtime(spec, model, tokenizer, quiet=quiet)


def evaluate_items(cfg: EvalConfig, items: list[MCQItem], report: Any, model: Any = None,
                   tokenizer: Any = None, loaded: Runtime | None = None,
                   calibration: list[MCQItem] | None = None) -> dict:
    """Score loaded items with the configured model and write metrics.json and predictions.jsonl;
    `calibration`: questions to fit the confidence temperature on (else --calibrate-on's, if given)."""
    import torch

    from medtune.backend import default_batch_size, processes
    from medtune.data.prompts import resolve_template
    from medtune.eval.results import build_metrics, build_rows, write_eval

    torch.manual_seed(cfg.seed)
    rank, world = processes() if cfg.distributed else (0, 1)
    lo = loaded or load_for_eval(cfg, model, tokenizer, quiet=rank != 0)
    if lo.encoder:
        cfg = dataclasses.replace(cfg, scorers=[encoder_scorer().name], template="none")
        template = "none"
    else:
        template = resolve_template(cfg.template, lo.tokenizer)
    batch_size = cfg.batch_size or default_batch_size(lo.backend)
    max_length = cfg.max_length or _model_max_length(lo.model)
    options = ScorerOptions(max_new_tokens=cfg.max_new_tokens, thinking=cfg.thinking)

    outputs, timings = {}, {}
    t0 = time.perf_counter()
    for scorer in cfg.scorers:
        ts = time.perf_counter()
        outputs[scorer] = run_scorer(lo.model, lo.tokenizer, items, scorer, template, batch_size=batch_size,
                                     device=lo.backend.device, max_length=max_length, progress=cfg.progress,
                                     processes=(rank, world), options=options)
        timings[scorer] = time.perf_counter() - ts
    wall = time.perf_counter() - t0

    def again(scorer: str, its: list[MCQItem]) -> ScorerOutput:
        return run_scorer(lo.model, lo.tokenizer, its, scorer, template, batch_size=batch_size,
                          device=lo.backend.device, max_length=max_length, progress=cfg.progress,
                          processes=(rank, world), options=options)

    if cfg.calibrate_on and calibration is None:
        from medtune.data.sources import load_benchmark

        calibration = load_benchmark([cfg.calibrate_on], cfg.load_options)[0]
    primary = SCORERS[cfg.scorers[0]].results[0]
    sections, extra_rows = robustness.analyse(cfg, items, outputs, again, primary, calibration)
    metrics = build_metrics(cfg, items, report, outputs, lo, template=template, batch_size=batch_size,
                            max_length=max_length, world=world,
                            timing={"load_s": lo.load_s, "score_s": wall, "per_scorer_s": timings,
                                    "robustness_s": sections.pop("robustness_s")})
    metrics.update(sections)
    d = sections.get("debias")
    metrics["manifest"].update(permute=cfg.permute, debias=d and {k: d[k] for k in ("method", "fraction", "seed",
                                                                                   "prior_ids")})
    if cfg.out and rank == 0:
        rows = build_rows(items, outputs, metrics["primary"])
        write_eval(cfg.out, metrics, [{**r, **x} for r, x in zip(rows, extra_rows)])
    return metrics


def _model_max_length(model: Any) -> int | None:
    cfg = getattr(model, "config", None)
    return getattr(cfg, "max_position_embeddings", None)


def format_table(metrics: dict, title: str = "") -> str:
    """A short terminal summary of a metrics dict."""
    from medtune.eval.results import format_table as fmt

    return fmt(metrics, title)

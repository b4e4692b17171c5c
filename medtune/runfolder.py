"""The one place that knows a run folder's layout: its paths, atomic writes into it, resume detection.

A training run (`medtune train`, `medtune demo`) writes::

    RUN/recipe.yaml        the resolved recipe (written first; `--resume` checks it)
    RUN/manifest.json      versions, backend, GPU, data hashes
    RUN/metrics.json       the run summary
    RUN/compare.json       before/after, paired McNemar test
    RUN/curves.png         training loss and eval accuracy
    RUN/adapter/           the PEFT adapter (adapter methods) or RUN/model/ (full, multiple_choice)
    RUN/baseline/          metrics.json + predictions.jsonl of the untrained model
    RUN/final/             the same for the trained model
    RUN/checkpoints/       Trainer checkpoints (complete ones carry a marker file)
    RUN/tensorboard/       TensorBoard event files

An eval folder (`medtune eval --out DIR`) is just metrics.json + predictions.jsonl; `RunFolder`
reads both kinds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medtune.io import atomic_write_json, atomic_write_jsonl, atomic_write_text, load_json

RECIPE = "recipe.yaml"
MANIFEST = "manifest.json"
METRICS = "metrics.json"
PREDICTIONS = "predictions.jsonl"
COMPARE = "compare.json"
CURVES = "curves.png"


@dataclass(frozen=True)
class RunFolder:
    """A run or eval folder and the names of everything in it."""

    root: Path

    def __init__(self, root: str | os.PathLike):
        object.__setattr__(self, "root", Path(root))

    def __str__(self) -> str:
        return str(self.root)

    # --- files ------------------------------------------------------------------------------------
    @property
    def recipe(self) -> Path:
        return self.root / RECIPE

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    @property
    def metrics(self) -> Path:
        return self.root / METRICS

    @property
    def predictions(self) -> Path:
        return self.root / PREDICTIONS

    @property
    def compare(self) -> Path:
        return self.root / COMPARE

    @property
    def curves(self) -> Path:
        return self.root / CURVES

    # --- folders ----------------------------------------------------------------------------------
    @property
    def adapter(self) -> Path:
        return self.root / "adapter"

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def report(self) -> Path:
        return self.root / "report"

    @property
    def hub(self) -> Path:
        return self.root / "hub"

    def trained(self, whole_model: bool) -> Path:
        """Where the trained weights go: model/ for full and multiple-choice training, else adapter/."""
        return self.model if whole_model else self.adapter

    def saved_weights(self) -> Path | None:
        """The trained adapter/ or model/ folder that exists, or None."""
        for p in (self.adapter, self.model):
            if p.is_dir():
                return p
        return None

    @property
    def baseline(self) -> RunFolder:
        return RunFolder(self.root / "baseline")

    @property
    def final(self) -> RunFolder:
        return RunFolder(self.root / "final")

    # --- what kind of folder ----------------------------------------------------------------------
    def is_training_run(self) -> bool:
        """A folder written by `medtune train` (it has a final evaluation or a recipe)."""
        return self.final.metrics.is_file() or self.recipe.is_file()

    def is_eval(self) -> bool:
        """A folder written by `medtune eval` (metrics.json beside predictions.jsonl)."""
        return self.metrics.is_file() and self.predictions.is_file()

    def has_checkpoints(self) -> bool:
        """Whether a training run already wrote checkpoints here (so a new run must not reuse it)."""
        return self.recipe.is_file() and any(self.checkpoints.glob("checkpoint-*"))

    # --- reading and writing ----------------------------------------------------------------------
    def read_json(self, path: Path, missing: str = "missing") -> Any:
        """JSON from one of this folder's files (a one-line MedtuneError when missing or bad)."""
        return load_json(path, missing=missing)

    def read_json_or_none(self, path: Path) -> Any:
        """JSON from one of this folder's files, or None when it is not there."""
        return load_json(path) if path.is_file() else None

    def write_json(self, path: Path, obj: Any) -> Path:
        """Write JSON atomically to one of this folder's files."""
        return atomic_write_json(path, obj)

    def write_text(self, path: Path, text: str) -> Path:
        """Write text atomically to one of this folder's files."""
        return atomic_write_text(path, text)

    def write_predictions(self, rows: list[dict]) -> Path:
        """predictions.jsonl, one row per question, atomically."""
        return atomic_write_jsonl(self.predictions, rows)

"""The evaluations a report shows: a training run's before/after (baseline/, final/) or one eval folder,
found through medtune.runfolder.RunFolder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from medtune.errors import MedtuneError
from medtune.runfolder import RunFolder


@dataclass
class Evaluation:
    """One evaluation: its label in the report, its folder, and its metrics.json."""

    label: str
    folder: Path
    metrics: dict

    @property
    def primary(self) -> dict:
        """The headline scorer's results."""
        return self.metrics["results"][self.metrics["primary"]]


def evaluations(folder: str, prefix: str = "") -> tuple[list[Evaluation], dict | None]:
    """The evaluations in a run folder (before, after) or an eval folder, and the run summary if any."""
    run = RunFolder(folder)
    if not run.root.is_dir():
        raise MedtuneError("no such folder", path=folder)
    if run.final.metrics.is_file():
        summary = run.read_json_or_none(run.metrics)
        out = []
        if run.baseline.metrics.is_file():
            out.append(Evaluation(f"{prefix}before", run.baseline.root, run.read_json(run.baseline.metrics)))
        out.append(Evaluation(f"{prefix}after", run.final.root, run.read_json(run.final.metrics)))
        return out, summary
    if run.metrics.is_file():
        m = run.read_json(run.metrics)
        if "results" in m:
            return [Evaluation(prefix + (run.root.name or "eval"), run.root, m)], None
    raise MedtuneError("not a medtune run or eval folder (no final/metrics.json or metrics.json with "
                       "results)", path=folder)

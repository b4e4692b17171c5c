"""The benchmarks medtune knows by name: where each official split lives, how to read it, how to
score it, and which lm-evaluation-harness task it corresponds to.

Adding a benchmark is one `Benchmark(...)` entry in `_ENTRIES` (its format must be one of
`medtune.data.formats.FORMATS`). Each entry gives names `NAME-SPLIT` (`medmcqa-dev`,
`medmcqa-train`, `mmlu-anatomy-test`, ...) that every command accepts where it takes a data source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from medtune.errors import MedtuneError, did_you_mean

RESOURCES = Path(__file__).resolve().parent.parent / "resources" / "data"
MMLU_MEDICAL = ("anatomy", "clinical_knowledge", "college_biology", "college_medicine",
                "medical_genetics", "professional_medicine")


@dataclass(frozen=True)
class Benchmark:
    """One benchmark: its official splits (hf: specs or shipped files) and how it is scored."""

    name: str
    format: str                                   # a key of formats.FORMATS (the Hub's layout)
    splits: dict[str, str]                        # official split -> hf:ID[:CONFIG]:SPLIT
    lm_eval_tasks: tuple[str, ...]
    scorer: str = "letter"
    shipped: dict[str, Path] = field(default_factory=dict)   # split -> file inside medtune
    note: str = ""


_ENTRIES = [
    Benchmark("medmcqa", "medmcqa",
              {"train": "hf:openlifescienceai/medmcqa:train", "validation": "hf:openlifescienceai/medmcqa:validation",
               "test": "hf:openlifescienceai/medmcqa:test"},
              ("medmcqa",), shipped={"dev": RESOURCES / "medmcqa_dev.jsonl"},
              note="dev is the validation split in the original release's layout (cop 1-4); test has no answers"),
    Benchmark("medqa", "swag",
              {"train": "hf:GBaker/MedQA-USMLE-4-options-hf:train",
               "validation": "hf:GBaker/MedQA-USMLE-4-options-hf:validation",
               "test": "hf:GBaker/MedQA-USMLE-4-options-hf:test"},
              ("medqa_4options",), note="USMLE, four options"),
    Benchmark("pubmedqa", "pubmedqa",
              {"train": "hf:bigbio/pubmed_qa:pubmed_qa_labeled_fold0_source:train",
               "validation": "hf:bigbio/pubmed_qa:pubmed_qa_labeled_fold0_source:validation",
               "test": "hf:bigbio/pubmed_qa:pubmed_qa_labeled_fold0_source:test"},
              ("pubmedqa",), note="PQA-L, yes/no/maybe with the abstract as context"),
    *(Benchmark(f"mmlu-{s.replace('_', '-')}", "mmlu_hub",
                {sp: f"hf:cais/mmlu:{s}:{sp}" for sp in ("test", "validation", "dev")},
                (f"mmlu_{s}",), note=f"MMLU {s.replace('_', ' ')}") for s in MMLU_MEDICAL),
]
BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in _ENTRIES}


def builtin_names() -> dict[str, str]:
    """Every `NAME-SPLIT` and the source it stands for (a shipped file, else the hf: spec)."""
    out: dict[str, str] = {}
    for b in BENCHMARKS.values():
        for split, spec in b.splits.items():
            out[f"{b.name}-{split}"] = spec
        for split, path in b.shipped.items():
            out[f"{b.name}-{split}"] = str(path)
    return out


def resolve(name: str) -> str:
    """The source a built-in name stands for; a MedtuneError with "did you mean" otherwise."""
    names = builtin_names()
    if name in names:
        return names[name]
    raise MedtuneError(f"no such file, folder or benchmark{did_you_mean(name, names)}", path=name)


def benchmark_of(name: str) -> Benchmark | None:
    """The entry a built-in name (`medmcqa-dev`) or benchmark name (`medmcqa`) belongs to."""
    if name in BENCHMARKS:
        return BENCHMARKS[name]
    base, _, split = name.rpartition("-")
    b = BENCHMARKS.get(base)
    return b if b is not None and (split in b.splits or split in b.shipped) else None

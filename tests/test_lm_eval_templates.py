"""`--template lm-eval` renders each of the nine leaderboard tasks exactly as lm-evaluation-harness does.

tests/data/lm_eval_prompts.json holds lm-eval 0.4.13's own contexts and continuations for the first two
documents of each task, produced by its task objects (`Task.fewshot_context`, `construct_requests`) on
the ../shared/data copies: `python benchmarks/vs_lm_eval.py --write-prompts tests/data/lm_eval_prompts.json`
(run with lm-eval installed in its own venv). The benchmark checks every question of the limit the same way.
"""

from __future__ import annotations

import json

import pytest

from conftest import DATA, shared_path
from medtune.data.prompts import load_template, lm_eval_task, render
from medtune.data.schema import MCQItem
from medtune.data.sources import LoadOptions, load_benchmark
from medtune.errors import MedtuneError
from medtune.eval.scoring import continuation_text

PINNED = json.loads((DATA / "lm_eval_prompts.json").read_text("utf-8"))
CASES = [(task, row) for task, rows in PINNED.items() for row in rows]


def test_the_nine_tasks_are_pinned():
    assert list(PINNED) == ["medmcqa", "medqa_4options", "pubmedqa", "mmlu_anatomy", "mmlu_clinical_knowledge",
                            "mmlu_college_biology", "mmlu_college_medicine", "mmlu_medical_genetics",
                            "mmlu_professional_medicine"]
    assert all(len(rows) == 2 for rows in PINNED.values())


@pytest.mark.parametrize("task,row", CASES, ids=[f"{t}-{r['index']}" for t, r in CASES])
def test_prompt_equals_lm_eval(task, row):
    source = shared_path("data") / row["source"]
    items, _ = load_benchmark([str(source)], LoadOptions(split=row["split"]))
    item = items[row["index"]]
    p = render(item, "lm-eval")
    assert p.prompt == row["context"]
    assert [continuation_text(p.prompt, c) for c in p.choices] == row["continuations"]
    assert lm_eval_task(item) == task


def test_mmlu_description_names_the_subject_with_spaces():
    item = MCQItem(id="m", question="Which bone?", options=("a", "b", "c", "d"), answer_index=1,
                   subject="clinical_knowledge", source="mmlu/clinical_knowledge")
    assert render(item, "lm-eval").prompt == (
        "The following are multiple choice questions (with answers) about clinical knowledge.\n\n"
        "Which bone?\nA. a\nB. b\nC. c\nD. d\nAnswer:")
    assert lm_eval_task(item) == "mmlu_clinical_knowledge"


def test_pubmedqa_abstract_drops_section_labels_and_scores_the_words():
    item = MCQItem(id="p", question="Does it work?", options=("yes", "no", "maybe"), answer_index=2,
                   context="BACKGROUND: Some background.\nRESULTS AND DISCUSSION: It worked: 3/4.",
                   source="pubmedqa")
    p = render(item, "lm-eval")
    assert p.prompt == "Abstract: Some background.\nIt worked: 3/4.\nQuestion: Does it work?\nAnswer:"
    assert p.choices == ("yes", "no", "maybe") and p.target == "maybe"
    raw = MCQItem(id="q", question="Q?", options=("yes", "no", "maybe"), answer_index=0, context="X: y",
                  source="pubmedqa", meta={"contexts": ["X: y", "second"]})
    assert render(raw, "lm-eval").prompt == "Abstract: X: y\nsecond\nQuestion: Q?\nAnswer:"  # sections as given


def test_medmcqa_and_medqa_layouts():
    item = MCQItem(id="x", question="Q?", options=("a", "b", "c", "d"), answer_index=0, source="medmcqa")
    assert render(item, "lm-eval").prompt == "Question: Q?\nChoices:\nA. a\nB. b\nC. c\nD. d\nAnswer:"
    for source in ("medqa", "swag"):  # the local MedQA files and the Hub's SWAG-shaped copy
        item = MCQItem(id="y", question="Q?", options=("a", "b", "c", "d"), answer_index=0, source=source)
        assert render(item, "lm-eval").prompt == "Question: Q?\nA. a\nB. b\nC. c\nD. d\nAnswer:"
    assert load_template("lm-eval-medmcqa").lm_eval_task == "medmcqa"


def test_unknown_source_is_a_clear_error():
    item = MCQItem(id="z", question="Q?", options=("a", "b"), answer_index=0, source="medtune")
    with pytest.raises(MedtuneError, match="template 'lm-eval' has no prompt for questions from 'medtune' "
                                           "\\(question z\\); it knows medmcqa, medqa, swag, pubmedqa, mmlu"):
        render(item, "lm-eval")

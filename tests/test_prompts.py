"""Prompt templates render the same question the expected ways."""

from __future__ import annotations

import pytest

from medtune.data.prompts import render, resolve_template, target_text
from medtune.data.schema import MCQItem
from medtune.errors import MedtuneError

ITEM = MCQItem(id="x", question="Drug of choice for absence seizures?", options=("Ethosuximide", "Phenytoin", "Carbamazepine"),
               answer_index=0, explanation="Ethosuximide blocks T-type calcium channels.")


def test_plain_template():
    p = render(ITEM, "plain")
    assert p.prompt.endswith("Question: Drug of choice for absence seizures?\nA. Ethosuximide\nB. Phenytoin\n"
                             "C. Carbamazepine\nAnswer:")
    assert p.target == "A" and p.choices == ("A", "B", "C")


def test_chat_template_uses_the_tokenizer(tiny_tokenizer):
    assert resolve_template("auto", tiny_tokenizer) == "chat"
    p = render(ITEM, "auto", tiny_tokenizer)
    assert p.prompt.startswith("<|im_start|>user\nThe following is a multiple-choice question")
    assert p.prompt.endswith("C. Carbamazepine<|im_end|>\n<|im_start|>assistant\n")


def test_targets_and_cloze():
    assert target_text(ITEM, "letter_text") == "A. Ethosuximide"
    assert target_text(ITEM, "letter_text_explanation") == ("A. Ethosuximide\nExplanation: Ethosuximide blocks "
                                                            "T-type calcium channels.")
    cloze = render(ITEM, "plain", cloze=True)
    assert "A. Ethosuximide" not in cloze.prompt and cloze.choices == ITEM.options


def test_hackathon_template_matches_the_prototype_layout():
    p = render(ITEM, "hackathon", target="letter_text_explanation")
    assert p.prompt == ("### Question:\nDrug of choice for absence seizures?\n\n### Options:\nA. Ethosuximide\n"
                        "B. Phenytoin\nC. Carbamazepine\n\n### Answer:\n")
    assert p.target == "A. Ethosuximide\n\n### Explanation:\nEthosuximide blocks T-type calcium channels."


def test_context_is_shown():
    item = MCQItem(id="p", question="Does it work?", options=("yes", "no", "maybe"), answer_index=0,
                   context="RESULTS: It worked.")
    assert "Context:\nRESULTS: It worked.\n\nQuestion: Does it work?" in render(item, "plain").prompt


def test_unknown_template_and_missing_chat_template():
    with pytest.raises(MedtuneError, match="unknown template 'chta' \\(did you mean 'chat'\\?\\)"):
        resolve_template("chta")
    with pytest.raises(MedtuneError, match="no chat template"):
        resolve_template("chat", object())

"""Prompt templates render the same question the expected ways."""

from __future__ import annotations

import re

import pytest

from medtune.data.prompts import render, resolve_template, target_text
from medtune.data.schema import MCQItem
from medtune.data.sources import load_benchmark
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


def test_builtin_templates_are_yaml_files():
    from medtune.data.prompts import BUILTIN_DIR, load_template

    assert {p.stem for p in BUILTIN_DIR.glob("*.yaml")} >= {"chat", "plain", "hackathon", "lm-eval"}
    plain = load_template("plain")
    assert plain.answer_cue == "\nAnswer:" and plain.path == str(BUILTIN_DIR / "plain.yaml")
    assert load_template("chat").chat and not plain.chat


def test_user_template_round_trip(tmp_path):
    from medtune.data.prompts import Fewshot, Template, load_template, save_template

    t = Template(name="mine", layout="Q: {question}\n{options}\n", option="({letter}) {text}", option_separator="; ",
                 answer_cue="A:", system="You are a careful clinician.", description="Subject: {subject}\n",
                 fewshot=Fewshot(n=2, source="medmcqa-dev", seed=3))
    path = save_template(t, tmp_path / "mine.yaml")
    back = load_template(str(path))
    assert back == Template(**{**t.__dict__, "path": str(path)})
    item = MCQItem(id="u", question="Why?", options=("x", "y"), answer_index=1, subject="Pharmacology")
    p = render(item, str(path))
    head, shot1, shot2, last = p.prompt.split("Q: ")
    assert head == "You are a careful clinician.\n\nSubject: Pharmacology\n"
    pool = {it.question: it for it in load_benchmark(["medmcqa-dev"])[0]}
    for shot in (shot1, shot2):  # solved examples from the named source, each with its gold letter
        m = re.fullmatch(r"(.+)\n\(A\) .*\nA: ([A-D])\n\n", shot, re.S)
        assert m and pool[m.group(1)].answer_letter == m.group(2)
    assert last == "Why?\n(A) x; (B) y\nA:"
    assert p.choices == ("A", "B") and p.target == "B"
    again = render(item, str(path))  # same seed, same examples
    assert again.prompt == p.prompt


def test_user_template_errors(tmp_path):
    from medtune.data.prompts import load_template

    bad = tmp_path / "bad.yaml"
    bad.write_text("layout: 'Q: {question}'\nanswer_que: 'A:'\n")
    with pytest.raises(MedtuneError, match="bad.yaml: answer_que: unknown key 'answer_que' \\(did you mean "
                                           "'answer_cue'\\?\\)"):
        load_template(str(bad))
    bad.write_text("layout: 'Q: {qestion}'\n")
    with pytest.raises(MedtuneError, match="bad.yaml: layout: unknown or bad placeholder 'qestion'"):
        load_template(str(bad))
    bad.write_text("layout: 'Q: {question}'\nfewshot: {n: 3}\n")
    with pytest.raises(MedtuneError, match="fewshot.source: fewshot.n is 3 but no fewshot.source"):
        load_template(str(bad))
    with pytest.raises(MedtuneError, match="no such template file"):
        load_template(str(tmp_path / "missing.yaml"))

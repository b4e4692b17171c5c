"""The answer extractor against the hand-written set (tests/data/extraction/cases.jsonl), and its rules."""

from __future__ import annotations

import json

import pytest

from conftest import DATA

from medtune.eval.extract import Extraction, extract_answer, split_thinking

CASES = [json.loads(line) for line in (DATA / "extraction" / "cases.jsonl").read_text(encoding="utf-8").splitlines()]
NERVES = ["Radial nerve", "Axillary nerve", "Ulnar nerve", "Median nerve"]


def _letter(e: Extraction) -> str | None:
    return None if e.index is None else "ABCDEFGHIJ"[e.index]


def test_the_set_is_large_varied_and_explained():
    assert len(CASES) >= 60
    assert all(set(c) == {"text", "options", "expected", "reason"} and c["reason"].strip() for c in CASES)
    assert len({c["text"] + json.dumps(c["options"]) for c in CASES}) == len(CASES)  # no duplicates
    nulls = sum(c["expected"] is None for c in CASES)
    assert 20 <= nulls <= len(CASES) - 40  # refusals and hedges, but mostly answers
    assert sum("<think>" in c["text"] or "</think>" in c["text"] for c in CASES) >= 5


@pytest.mark.parametrize("case", CASES, ids=[f"{i + 1}-{c['reason'][:40]}" for i, c in enumerate(CASES)])
def test_hand_written_case(case):
    got = extract_answer(case["text"], case["options"])
    assert _letter(got) == case["expected"], f"{case['reason']} (rule: {got.how})"


def test_last_match_wins_within_each_kind_of_statement():
    assert extract_answer("Answer: A\nAnswer: C", NERVES) == Extraction(2, "answer-line")
    assert extract_answer("The answer is D. No, the answer is B.", NERVES) == Extraction(1, "answer-is")
    assert extract_answer("\\boxed{A} then \\boxed{C}", NERVES) == Extraction(2, "boxed")
    assert extract_answer("Answer: C\n\\boxed{A}", NERVES) == Extraction(0, "boxed")
    assert extract_answer("\\boxed{A}\nAnswer: C", NERVES) == Extraction(2, "answer-line")
    assert extract_answer("(C)\nThe axillary nerve? No:\n(C)", NERVES) == Extraction(2, "lone-letter")
    # lines starting with different letters are options restated, not a choice: no last-line win there
    assert extract_answer("(A)\n(C)", NERVES) == Extraction(None, "listing")
    assert extract_answer("A. Radial nerve\nB. Axillary nerve\nC. Ulnar nerve", NERVES) == Extraction(None, "listing")


@pytest.mark.parametrize("text, how", [
    ("A B C D", "listing"),
    ("A\nB\nC\nD", "listing"),
    ("(A) (B) (C) (D)", "listing"),
    ("A. Radial nerve\nB. Axillary nerve\nC. Ulnar nerve\nD. Median nerve", "listing"),
    ("Radial nerve\nAxillary nerve\nUlnar nerve\nMedian nerve", "listing"),
    ("Answer: A\nAnswer: B\nAnswer: C\nAnswer: D", "listing"),
    ("\\boxed{A}\\boxed{B}\\boxed{C}\\boxed{D}", "listing"),
    ("Answer: A B C D", "hedge"),
    ("the answer is A or B", "hedge"),
    ("The answer is B or C", "hedge"),
    ("Answer: a/b", "hedge"),
    ("Answer: (A) and (D)", "hedge"),
    ("The answer is either A or C.", "hedge"),
    ("The answer is one of A, B.", "hedge"),
    ("The answer is B.\nActually the answer is C or D.", "hedge"),
])
def test_reward_hacking_gives_no_answer(text, how):
    """A reward for 'any letter found' would teach a model to list letters or hedge: both give None."""
    assert extract_answer(text, NERVES) == Extraction(None, how)


def test_every_letter_listed_never_scores_whatever_the_gold():
    for text in ("A B C D", "A, B, C, D", "A/B/C/D", "ABCD", "Answer: A or B or C or D"):
        assert extract_answer(text, NERVES).index is None, text


def test_letters_beyond_the_options_and_defaults():
    assert extract_answer("Answer: C", ["yes", "no", "maybe"]).index == 2
    assert extract_answer("Answer: D", ["yes", "no", "maybe"]) == Extraction(None, "none")
    assert extract_answer("", NERVES) == Extraction(None, "none")
    assert extract_answer("   \n  ", NERVES) == Extraction(None, "none")
    assert extract_answer("The weather is nice today.", NERVES) == Extraction(None, "none")


def test_split_thinking():
    assert split_thinking("<think>\nwhy\n</think>\n\nAnswer: B") == ("why", "Answer: B")
    assert split_thinking("<think>still going") == ("still going", "")
    assert split_thinking("opened in the prompt</think>Answer: C") == ("opened in the prompt", "Answer: C")
    assert split_thinking("no block\n") == ("", "no block")
    assert split_thinking("<think>a</think>mid<think>b</think> end") == ("a</think>mid<think>b", "end")

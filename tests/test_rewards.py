"""GRPO rewards: the extractor's verdict, reward-hacking completions get 0, unparseable ones are counted."""

from __future__ import annotations

import pytest

from medtune.train.rewards import AnswerReward, FormatReward, read_completion, reward_functions

OPTIONS = ["Aspirin", "Heparin", "Warfarin", "Insulin"]
GOLD = 2  # C, Warfarin


def _reward(completions: list, gold: int = GOLD, options: list = OPTIONS, prompt: str = "p") -> list[float]:
    return AnswerReward()([prompt] * len(completions), completions, [gold] * len(completions),
                          [options] * len(completions))


@pytest.mark.parametrize("completion", [
    "A B C D",
    "the answer is A or B",
    "The answer is C or D",  # a hedge that includes the right letter still commits to nothing
    "Answer: either B or C",
    "A. Aspirin\nB. Heparin\nC. Warfarin\nD. Insulin",  # lists every option
    "Answer: A\nAnswer: B\nAnswer: C\nAnswer: D",  # one answer line per letter
    "A\nB\nC\nD",
])
def test_reward_hacking_completions_get_zero(completion):
    assert _reward([completion]) == [0.0]
    assert read_completion("p", completion, OPTIONS).index is None


def test_last_match_wins():
    assert _reward(["Answer: A\nWait, that is wrong. Answer: C"]) == [1.0]
    assert _reward(["Answer: C\nWait, that is wrong. Answer: A"]) == [0.0]


def test_right_wrong_and_option_text():
    assert _reward(["Answer: C", "Answer: B", "The answer is warfarin.", "\\boxed{C}"]) == [1.0, 0.0, 1.0, 1.0]


def test_reasoning_is_not_read_and_an_unclosed_think_block_answers_nothing():
    assert _reward(["<think>Answer: C looks right</think>\nAnswer: B"]) == [0.0]
    assert _reward(["<think>Answer: C looks right"]) == [0.0]
    # a template that opens the think block in the prompt: the completion continues inside it
    assert _reward(["Answer: C is tempting</think>\nAnswer: B"], prompt="<|im_start|>assistant\n<think>\n") == [0.0]
    assert _reward(["reasoning...</think>\nAnswer: C"], prompt="<|im_start|>assistant\n<think>\n") == [1.0]


def test_letter_beyond_the_options_is_unparseable():
    assert _reward(["Answer: E"]) == [0.0]
    assert _reward(["Answer: C"], options=OPTIONS[:2], gold=1) == [0.0]


def test_unparseable_completions_are_counted_and_logged():
    reward = AnswerReward()
    logged: dict[str, float] = {}
    completions = ["Answer: C", "I cannot tell.", "A B C D", "Answer: A"]
    got = reward(["p"] * 4, completions, [GOLD] * 4, [OPTIONS] * 4, log_metric=logged.__setitem__)
    assert got == [1.0, 0.0, 0.0, 0.0]
    assert logged == {"answer/accuracy": 0.25, "answer/unparseable_rate": 0.5}
    reward(["p"], ["Answer: C"], [GOLD], [OPTIONS])
    assert reward.tally.to_dict() == {"completions": 5, "correct": 2, "unparseable": 2, "accuracy": 0.4,
                                      "unparseable_rate": 0.4,
                                      "extraction": {"answer-line": 3, "listing": 1, "none": 1}}


def test_chat_completions_are_read_as_text():
    assert _reward([[{"role": "assistant", "content": "Answer: C"}]]) == [1.0]


def test_format_reward_needs_one_readable_answer_line():
    fmt = FormatReward()
    completions = ["Answer: B", "The answer is B", "Answer: A or B", "A B C D", "no idea", "Answer: C"]
    assert fmt(["p"] * 6, completions, options=[OPTIONS] * 6) == [1.0, 0.0, 0.0, 0.0, 0.0, 1.0]


def test_reward_functions_and_weights():
    funcs, weights = reward_functions(0.0)
    assert [f.__name__ for f in funcs] == ["answer"] and weights == [1.0]
    funcs, weights = reward_functions(0.1)
    assert [f.__name__ for f in funcs] == ["answer", "format"] and weights == [1.0, 0.1]

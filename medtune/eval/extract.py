"""The answer a generated text commits to: an option index, or None. One module, one set of rules.

Read after the reasoning (`split_thinking` strips a `<think>` block, closed or not), in three tiers;
the first tier that finds anything decides, and within a tier the LAST match wins:

1. statements: "Answer: X", "the (correct|final) answer is (X)", `\\boxed{X}`, "I'll go with X",
   "option X is correct", "B is the correct answer."; X is a letter or an option's text ("the answer
   is axillary nerve").
2. a line that starts with a letter: "B", "(b).", "**C**", "Option B", "D. Hypothyroidism"; when such
   lines name different letters (options restated, "A. ...\nB. ...\nC. ...") nothing was chosen: None.
3. the option's text without its letter: the last line that is an option's text, else the one option
   whose text (6+ characters) the last line contains ("The most likely diagnosis is Cushing syndrome.").

Case, markdown and punctuation are tolerated; a letter beyond the number of options is not an answer.
Never a default letter: whatever is unclear gives None. Guards against reward hacking (a scorer that
rewards any letter found would teach a model to list them all): a final statement that hedges
("A or B", "either B or C", "between A and B") gives None, and answers that name every option
("A. ...\\nB. ...\\nC. ...\\nD. ...", "Answer: A ... Answer: D", and without a statement any text in
which every letter stands alone) give None.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

LETTERS = "ABCDEFGHIJ"
HEDGE = -1  # internal: a statement that names more than one option

_CUE = re.compile(
    r"(?P<kind>"
    r"(?:final|correct|right|best|my)?\s*\b(?:answer|option|choice)\b\s*[\"'*_]*\s*[:=：]"  # answer line
    r"|\banswer\b[\"'*_]*\s*[-–—]+(?!\w)"
    r"|(?:final|correct|right|best)?\s*\b(?:answer|option|choice)\s+(?:here\s+)?"
    r"(?:is|would\s+be|should\s+be|must\s+be|will\s+be|seems\s+to\s+be)\b"
    r"|\b(?:i(?:'ll|\s+will|\s+would|'d)?\s+)?(?:go(?:ing)?\s+with|choose|chose|pick|select)\b"
    r")", re.IGNORECASE)
_BOXED = re.compile(r"\\boxed\s*\{((?:[^{}]|\{[^{}]*\})*)\}")
_OPTION_IS = re.compile(r"\b(?:option|choice)\s*\(?([A-Ja-j])\)?\s+is\s+(?:the\s+)?(?:correct|right|best)\b"
                        r"|\(([A-J])\)\s+is\s+(?:the\s+)?(?:correct|right|best)\b", re.IGNORECASE)
# "B is the correct answer." — a capital letter opening a line or sentence
_LETTER_IS = re.compile(r"(?:^|(?<=[.!?:]\s))[(*_\s]*([A-J])[)*_]*\s+is\s+(?:the\s+)?(?:correct|right|best)\b",
                        re.MULTILINE)
# leading words and marks between a cue and its answer: "is: **Option (B)**", "would likely be the letter C"
_LEAD = re.compile(r"^(?:[\s*_:=\-–—>\"'`#]|\\text\{|\\textbf\{|\\mathrm\{"
                   r"|(?:likely|probably|definitely|clearly|therefore|then|thus|indeed|most\s+likely|"
                   r"the|letter|option|choice|answer)\b)+", re.IGNORECASE)
_LETTER = re.compile(r"^[(\[{]?([A-Ja-j])(?![\w'’\-])[)\]}]?")
# a second letter after the first: "A or B", "a/b", "B and C"; after a comma only a capital ("A, a nerve")
_MORE = re.compile(r"^[)\]}*_\s]*(?:/|&|\bor\b|\band\b)\s*(?:maybe\s+|possibly\s+|perhaps\s+)?"
                   r"(?:option\s*|choice\s*)?[(\[]?\**[A-Ja-j](?![\w'’\-])", re.IGNORECASE)
_MORE_COMMA = re.compile(r"^[)\]}*_\s]*(?:,\s*(?:[Oo]ption\s*)?[(\[]?\**[A-J]|\s+[(\[]?[A-HJ])(?![\w'’\-])")
_STANDALONE = re.compile(r"(?<![\w'’])[(\[]?([A-J])(?![\w'’\-])")
_LINE = re.compile(r"^[\s>*_#\-•]*(?:(?P<opt>option|choice)\s*[:#]?\s*)?"
                   r"(?P<open>[(\[])?(?P<bold>\*\*)?(?P<letter>[A-Ja-j])\**(?P<close>[)\]])?\**"
                   r"(?P<after>[.:)]|$|\s)", re.IGNORECASE)
_RULED_OUT = re.compile(r"^\s*(?:is|are|was|seems)\s+(?:not|incorrect|wrong|false|unlikely|less)\b", re.IGNORECASE)
_WORD = re.compile(r"[^\w\s]+")


@dataclass(frozen=True)
class Extraction:
    """The option a text answers (index, or None when it does not answer) and which rule found it."""

    index: int | None
    how: str  # answer-line, answer-is, boxed, option-letter, lone-letter, option-text, hedge, listing, none


def split_thinking(text: str) -> tuple[str, str]:
    """(reasoning, answer part): a `<think>...</think>` block is the reasoning; an unclosed one has no answer."""
    close = text.rfind("</think>")
    start = text.find("<think>")
    if close >= 0:
        begin = start + len("<think>") if 0 <= start < close else 0
        return text[begin:close].strip(), text[close + len("</think>"):].strip()
    if start >= 0:  # still thinking when generation stopped: nothing was answered
        return text[start + len("<think>"):].strip(), text[:start].strip()
    return "", text.strip()


def _norm(text: str) -> str:
    return " ".join(_WORD.sub(" ", text.lower()).split())


def _option_text(content: str, options: Sequence[str], whole: bool) -> int | None:
    """The option whose text the content starts with (whole=False) or is (whole=True); longest wins."""
    got = _norm(content)
    best, best_len, tie = None, 0, False
    for i, opt in enumerate(options):
        o = _norm(opt)
        if not o:
            continue
        hit = got == o if whole else (got == o or got.startswith(o + " "))
        if hit and len(o) > best_len:
            best, best_len, tie = i, len(o), False
        elif hit and len(o) == best_len:
            tie = True
    return None if tie else best


def _parse_content(content: str, options: Sequence[str]) -> tuple[int | None, bool]:
    """What follows a cue: (index or HEDGE or None, whether it was a letter)."""
    content = content.lstrip()
    if re.match(r"^(?:not|n't|isn't|either|between|one\s+of|unclear|uncertain)\b", content, re.I):
        return (HEDGE if re.match(r"^(?:either|between|one\s+of)\b", content, re.I) else None), False
    content = _LEAD.sub("", content, count=1)
    line = content.split("\n", 1)[0]
    m = _LETTER.match(line)
    if m:
        letter, rest = m.group(1), line[m.end():]
        # a lowercase 'a' or 'i' followed by a word is the article or the pronoun, not an option
        if letter in "ai" and re.match(r"^\s+\w", rest):
            m = None
        elif _MORE.match(rest) or _MORE_COMMA.match(rest):
            return HEDGE, True
        else:
            index = LETTERS.index(letter.upper())
            return (index if index < len(options) else None), True
    return _option_text(line, options, whole=False), False


def _statements(answer: str, options: Sequence[str]) -> list[tuple[int, int, str]]:
    """Every answer statement as (position, index or HEDGE, how), in order; unparseable ones left out."""
    found = []
    for m in _CUE.finditer(answer):
        kind = m.group("kind").rstrip().lower()
        how = "answer-line" if kind.endswith((":", "=", "：", "-", "–", "—")) else "answer-is"
        index, _ = _parse_content(answer[m.end():m.end() + 200], options)
        if index is not None:
            found.append((m.start(), index, how))
    for m in _BOXED.finditer(answer):
        index, _ = _parse_content(m.group(1), options)
        if index is not None:
            found.append((m.start(), index, "boxed"))
    for m in [*_OPTION_IS.finditer(answer), *_LETTER_IS.finditer(answer)]:
        index = LETTERS.index(next(g for g in m.groups() if g).upper())
        if index < len(options):
            found.append((m.start(), index, "option-letter"))
    return sorted(found)


def _line_letters(answer: str, options: Sequence[str]) -> list[tuple[int, str]]:
    """Lines that start with an option letter ("B", "(c)", "**D.** ...", "Option B"), in order."""
    found = []
    for line in answer.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        letter, after = m.group("letter"), m.group("after")
        # "A nerve ..." is a sentence and "e.g." an abbreviation; "A." / "B)" / "(C)" / "**D**" / "Option D"
        # and a line that is only the letter are answers; "Option A is wrong" rules one out
        if after.isspace() and not (m.group("opt") or m.group("close") or m.group("bold")):
            continue
        if after == "." and re.match(r"\w\.", line[m.end():m.end() + 2]):
            continue
        if _RULED_OUT.match(line[m.end() - len(after):]):
            continue
        index = LETTERS.index(letter.upper())
        if index < len(options):
            found.append((index, "option-letter" if m.group("opt") else "lone-letter"))
    return found


def extract_answer(text: str, options: Sequence[str]) -> Extraction:
    """The option a generated answer commits to; None (never a guess) when it does not commit to one."""
    _, answer = split_thinking(text)
    if not answer:
        return Extraction(None, "none")
    statements = _statements(answer, options)
    if statements:
        named = {index for _, index, _ in statements if index != HEDGE}
        _, index, how = statements[-1]
        if index == HEDGE:
            return Extraction(None, "hedge")
        if len(options) >= 3 and len(named) == len(options):
            return Extraction(None, "listing")
        return Extraction(index, how)
    named = {LETTERS.index(m) for m in _STANDALONE.findall(answer)}
    if len(options) >= 2 and named >= set(range(len(options))):  # every letter appears: a listing
        return Extraction(None, "listing")
    lines = _line_letters(answer, options)
    if len({i for i, _ in lines}) > 1:  # options restated or weighed, none stated as the answer
        return Extraction(None, "listing")
    if lines:
        return Extraction(*lines[-1])
    return _by_option_text(answer, options)


def _by_option_text(answer: str, options: Sequence[str]) -> Extraction:
    """Tier 3: the last line that is an option's text, else the one option the last line names."""
    lines = [ln for ln in answer.splitlines() if ln.strip()]
    exact = [i for i in (_option_text(ln, options, whole=True) for ln in lines) if i is not None]
    if exact and len(options) >= 3 and len(set(exact)) == len(options):
        return Extraction(None, "listing")
    index = exact[-1] if exact else _contained_option(lines[-1], options)
    return Extraction(index, "option-text" if index is not None else "none")


def _contained_option(line: str, options: Sequence[str]) -> int | None:
    """The one option whose text (at least 6 characters) the line contains as words; None if 0 or several."""
    got = f" {_norm(line)} "
    hits = [i for i, opt in enumerate(options) if len(_norm(opt)) >= 6 and f" {_norm(opt)} " in got]
    return hits[0] if len(hits) == 1 else None

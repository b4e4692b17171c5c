"""Named prompt templates: an MCQItem in, (prompt, target) out. The only place prompts live."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medtune.data.schema import LETTERS, MCQItem
from medtune.errors import MedtuneError, did_you_mean

INSTRUCTION = ("The following is a multiple-choice question about medicine. "
               "Answer with the letter of the correct option.")
CLOZE_INSTRUCTION = "Answer the following question about medicine."

TEMPLATES = ("auto", "chat", "plain", "hackathon")
TARGETS = ("letter", "letter_text", "letter_text_explanation")


@dataclass(frozen=True)
class Prompt:
    """A rendered prompt, the answer continuation to train on, and the option continuations to score."""

    prompt: str
    target: str
    choices: tuple[str, ...]  # what a scorer compares: letters ("A", ...) or option texts


def resolve_template(name: str, tokenizer: Any = None) -> str:
    """'auto' becomes 'chat' when the tokenizer has a chat template, else 'plain'."""
    if name not in TEMPLATES:
        raise MedtuneError(f"unknown template {name!r}{did_you_mean(name, TEMPLATES)}; "
                           f"choose one of {', '.join(TEMPLATES)}", field="--template")
    if name == "auto":
        return "chat" if getattr(tokenizer, "chat_template", None) else "plain"
    if name == "chat" and not getattr(tokenizer, "chat_template", None):
        raise MedtuneError("this tokenizer has no chat template; use --template plain", field="--template")
    return name


def _options_block(item: MCQItem) -> str:
    return "\n".join(f"{LETTERS[i]}. {opt}" for i, opt in enumerate(item.options))


def _context_block(item: MCQItem) -> str:
    return f"Context:\n{item.context}\n\n" if item.context else ""


def target_text(item: MCQItem, target: str = "letter") -> str:
    """The answer as the model should write it: the letter, optionally its text and the explanation."""
    if target not in TARGETS:
        raise MedtuneError(f"unknown target {target!r}{did_you_mean(target, TARGETS)}; "
                           f"choose one of {', '.join(TARGETS)}", field="target")
    text = item.answer_letter
    if target != "letter":
        text += f". {item.answer_text}"
    if target == "letter_text_explanation" and item.explanation:
        text += f"\nExplanation: {item.explanation}"
    return text


def render(item: MCQItem, template: str, tokenizer: Any = None, *, target: str = "letter",
           cloze: bool = False) -> Prompt:
    """Render one question. `cloze=True` leaves the options out and scores their texts instead of letters."""
    template = resolve_template(template, tokenizer)
    letters = tuple(LETTERS[: len(item.options)])
    if template == "hackathon":
        body = f"### Question:\n{item.question}\n\n"
        if item.context:
            body = f"### Context:\n{item.context}\n\n" + body
        if not cloze:
            body += f"### Options:\n{_options_block(item)}\n\n"
        prompt = body + "### Answer:\n"
        tgt = target_text(item, target).replace("\nExplanation: ", "\n\n### Explanation:\n")
        return Prompt(prompt, tgt, item.options if cloze else letters)
    if cloze:
        body = f"{CLOZE_INSTRUCTION}\n\n{_context_block(item)}Question: {item.question}"
    else:
        body = f"{INSTRUCTION}\n\n{_context_block(item)}Question: {item.question}\n{_options_block(item)}"
    if template == "plain":
        return Prompt(body + "\nAnswer:", target_text(item, target), item.options if cloze else letters)
    messages = [{"role": "user", "content": body}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                           enable_thinking=False)
    return Prompt(prompt, target_text(item, target), item.options if cloze else letters)

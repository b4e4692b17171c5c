"""A tokenizer's chat template as a frame around the user's text, rendered once instead of per question.

Rendering a Jinja chat template costs about 0.2 ms a question: 40 s of the 182,822-question MedMCQA
train split. For a system prompt and a user turn most templates only print the user's text between a
fixed prefix and suffix. `chat_frame` renders the template with three probe texts (whitespace at both
ends, newlines, braces, a markup-like tag) and keeps (prefix, suffix) only when every probe comes back
as exactly prefix + probe + suffix; a template that trims, escapes or branches on the text gets no
frame, and `render` then calls `apply_chat_template` for each question as before.
"""

from __future__ import annotations

import hashlib
import weakref
from typing import Any

_PROBES = ("medtune probe text", "  two\nlines {x} <b>bold</b> [1]  ", "\nQuestion: 1?\nA. yes\nAnswer:")
_FRAMES: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


def messages(system: str, text: str) -> list[dict]:
    """The conversation a chat template renders: an optional system turn and one user turn."""
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]


def apply(tokenizer: Any, system: str, text: str, thinking: bool) -> str:
    """The tokenizer's own rendering of one question (with the generation prompt)."""
    return tokenizer.apply_chat_template(messages(system, text), tokenize=False, add_generation_prompt=True,
                                         enable_thinking=thinking)


def _probe(tokenizer: Any, system: str, thinking: bool) -> tuple[str, str] | None:
    first = apply(tokenizer, system, _PROBES[0], thinking)
    if first.count(_PROBES[0]) != 1:
        return None
    at = first.index(_PROBES[0])
    prefix, suffix = first[:at], first[at + len(_PROBES[0]):]
    for probe in _PROBES[1:]:
        if apply(tokenizer, system, probe, thinking) != prefix + probe + suffix:
            return None
    return prefix, suffix


def chat_frame(tokenizer: Any, system: str, thinking: bool) -> tuple[str, str] | None:
    """(prefix, suffix) with apply_chat_template(system, text) == prefix + text + suffix, or None when
    the template does more with the text than print it. Cached per tokenizer and chat template."""
    template = getattr(tokenizer, "chat_template", None)
    key = (hashlib.sha256(str(template).encode()).hexdigest(), system, thinking)
    try:
        frames = _FRAMES.setdefault(tokenizer, {})
    except TypeError:  # an object that takes no weak reference: probe every time
        return _probe(tokenizer, system, thinking)
    if key not in frames:
        frames[key] = _probe(tokenizer, system, thinking)
    return frames[key]


def render_chat(tokenizer: Any, system: str, text: str, thinking: bool) -> str:
    """The chat rendering of one question: through the frame when the template has one."""
    frame = chat_frame(tokenizer, system, thinking)
    if frame is None:
        return apply(tokenizer, system, text, thinking)
    return frame[0] + text + frame[1]

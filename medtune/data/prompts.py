"""Prompt templates: an MCQItem in, (prompt, target) out. The only place prompts live.

A template is a YAML file (the built-in ones are in medtune/resources/templates/: chat, plain,
hackathon, and lm-eval, which picks lm-evaluation-harness's own prompt per benchmark); a user passes
their own with `--template path/to/template.yaml`. Keys (all optional except layout):

    name, chat (wrap as a user turn of the tokenizer's chat template), system (system prompt),
    instruction / cloze_instruction ({instruction} in the layout), description (prepended once,
    e.g. lm-eval's MMLU line about {subject}), context (how an item's context shows; {context},
    {abstract}), layout / cloze_layout ({instruction} {context} {question} {options} {subject}),
    option ({letter} {text}), option_separator, answer_cue (after the layout), choices (letters or
    texts: what the scorer compares), explanation (how a training target adds it), fewshot
    ({n, source, seed, delimiter}: n solved examples drawn from `source` with `seed`), by_source
    (a family: MCQItem.source -> template name), lm_eval_task.
"""

from __future__ import annotations

import dataclasses
import functools
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medtune.data.chatframe import render_chat
from medtune.data.schema import LETTERS, MCQItem
from medtune.errors import MedtuneError, did_you_mean

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "resources" / "templates"
TEMPLATES = ("auto", "chat", "plain", "hackathon", "lm-eval")
TARGETS = ("letter", "letter_text", "letter_text_explanation")
_SECTION = re.compile(r"^(?:[A-Z][A-Z0-9 ,&/()\-]*|, [A-Za-z0-9]+): ")


@dataclass(frozen=True)
class Prompt:
    """A rendered prompt, the answer continuation to train on, and the option continuations to score."""

    prompt: str
    target: str
    choices: tuple[str, ...]  # what a scorer compares: letters ("A", ...) or option texts


@dataclass(frozen=True)
class Fewshot:
    """Solved examples put before each question: how many, drawn from which source with which seed."""

    n: int = 0
    source: str | None = None
    seed: int = 0
    delimiter: str = "\n\n"


@dataclass(frozen=True)
class Template:
    """One prompt layout (see the module docstring for each field)."""

    name: str
    layout: str = ""
    cloze_layout: str | None = None
    chat: bool = False
    system: str | None = None
    instruction: str = ""
    cloze_instruction: str = ""
    description: str = ""
    context: str = "Context:\n{context}\n\n"
    option: str = "{letter}. {text}"
    option_separator: str = "\n"
    answer_cue: str = ""
    choices: str = "letters"
    explanation: str = "\nExplanation: {explanation}"
    fewshot: Fewshot = field(default_factory=Fewshot)
    by_source: dict[str, str] = field(default_factory=dict)
    lm_eval_task: str | None = None
    path: str | None = None

    def for_item(self, item: MCQItem) -> Template:
        """The template that renders this item: itself, or for a family the one for item.source."""
        if not self.by_source:
            return self
        key = (item.source or "").split("/")[0]
        if key not in self.by_source:
            raise MedtuneError(f"template {self.name!r} has no prompt for questions from {item.source!r} "
                               f"(question {item.id}); it knows {', '.join(self.by_source)}", field="--template")
        return load_template(self.by_source[key])


FIELDS = {f.name for f in dataclasses.fields(Template)} - {"path"}


def _from_dict(data: Any, where: str) -> Template:
    if not isinstance(data, dict):
        raise MedtuneError("a template file is a mapping of keys to values", path=where)
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        raise MedtuneError(f"unknown key {unknown[0]!r}{did_you_mean(unknown[0], sorted(FIELDS))}", path=where,
                           field=unknown[0])
    data = dict(data)
    shots = data.pop("fewshot", None) or {}
    if not isinstance(shots, dict) or set(shots) - {"n", "source", "seed", "delimiter"}:
        raise MedtuneError("fewshot takes n, source, seed and delimiter", path=where, field="fewshot")
    fewshot = Fewshot(**shots)
    if fewshot.n and not fewshot.source:
        raise MedtuneError(f"fewshot.n is {fewshot.n} but no fewshot.source names where examples come from",
                           path=where, field="fewshot.source")
    if not data.get("layout") and not data.get("by_source"):
        raise MedtuneError("a template needs a layout (or by_source for a family)", path=where, field="layout")
    if data.get("choices", "letters") not in ("letters", "texts"):
        raise MedtuneError(f"choices is letters or texts, got {data['choices']!r}", path=where, field="choices")
    for key, value in data.items():
        want = bool if key == "chat" else dict if key == "by_source" else str
        if value is not None and not isinstance(value, want):
            raise MedtuneError(f"expected {want.__name__}, got {type(value).__name__}", path=where, field=key)
    data.setdefault("name", Path(where).stem)
    template = Template(**data, fewshot=fewshot, path=where)
    for key, names in PLACEHOLDERS.items():
        text = getattr(template, key)
        try:
            text is None or text.format(**{n: "" for n in names})
        except (KeyError, IndexError, ValueError) as err:
            raise MedtuneError(f"unknown or bad placeholder {err} (this key takes {', '.join(names)}; write "
                               "a literal brace as {{ or }})", path=where, field=key) from None
    return template


PLACEHOLDERS = {
    "layout": ("instruction", "context", "question", "options", "subject"),
    "cloze_layout": ("instruction", "context", "question", "options", "subject"),
    "context": ("context", "abstract"), "option": ("letter", "text"), "description": ("subject",),
    "explanation": ("explanation",),
}


@functools.lru_cache(maxsize=64)
def _load_file(path: str, mtime: float) -> Template:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text("utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise MedtuneError(f"invalid YAML: {getattr(err, 'problem', err)}", path=path,
                           line=mark.line + 1 if mark else None) from None
    return _from_dict(data, path)


def load_template(name: str | Template) -> Template:
    """A built-in template by name (chat, plain, hackathon, lm-eval, lm-eval-medmcqa ...) or a YAML file."""
    if isinstance(name, Template):
        return name
    builtin = BUILTIN_DIR / f"{name}.yaml"
    path = builtin if "/" not in name and builtin.is_file() else Path(name)
    if not path.is_file():
        names = sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml")) + ["auto"]
        if name.endswith((".yaml", ".yml")):
            raise MedtuneError("no such template file", path=name, field="--template")
        raise MedtuneError(f"unknown template {name!r}{did_you_mean(name, names)}; choose one of "
                           f"{', '.join(TEMPLATES)} or a template .yaml file", field="--template")
    return _load_file(str(path), path.stat().st_mtime)


def save_template(template: Template, path: str | Path) -> Path:
    """Write a template as a YAML file that `load_template` reads back to the same template."""
    import yaml

    from medtune.io import atomic_write_text

    data = {k: v for k, v in dataclasses.asdict(template).items() if k != "path"}
    defaults = {f.name: (f.default if f.default is not dataclasses.MISSING else f.default_factory())
                for f in dataclasses.fields(Template) if f.name not in ("name", "layout", "path")}
    defaults["fewshot"] = dataclasses.asdict(Fewshot())
    data = {k: v for k, v in data.items() if k in ("name", "layout") or v != defaults[k]}
    return atomic_write_text(Path(path), yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1000))


def resolve_template(name: str, tokenizer: Any = None) -> str:
    """'auto' becomes 'chat' when the tokenizer has a chat template, else 'plain'; anything else must load."""
    if name == "auto":
        return "chat" if getattr(tokenizer, "chat_template", None) else "plain"
    template = load_template(name)
    members = [load_template(t) for t in template.by_source.values()] or [template]
    if any(t.chat for t in members) and not getattr(tokenizer, "chat_template", None):
        raise MedtuneError("this tokenizer has no chat template; use --template plain", field="--template")
    return name


def target_text(item: MCQItem, target: str = "letter", template: Template | None = None) -> str:
    """The answer as the model should write it: the letter, optionally its text and the explanation."""
    if target not in TARGETS:
        raise MedtuneError(f"unknown target {target!r}{did_you_mean(target, TARGETS)}; "
                           f"choose one of {', '.join(TARGETS)}", field="target")
    if template is not None and template.choices == "texts":
        return item.answer_text
    text = item.answer_letter
    if target != "letter":
        text += f". {item.answer_text}"
    if target == "letter_text_explanation" and item.explanation:
        fmt = template.explanation if template is not None else Template.explanation
        text += fmt.format(explanation=item.explanation)
    return text


def _abstract(item: MCQItem) -> str:
    """PubMedQA's abstract as lm-eval shows it: its sections joined by newlines, without their labels."""
    sections = item.meta.get("contexts")
    if isinstance(sections, list):
        return "\n".join(map(str, sections))
    return "\n".join(_SECTION.sub("", line, count=1) for line in (item.context or "").split("\n"))


def _body(item: MCQItem, t: Template, cloze: bool) -> str:
    """The question as the layout writes it (no description, no answer cue)."""
    layout = t.cloze_layout if cloze else t.layout
    if layout is None:
        raise MedtuneError(f"template {t.name!r} has no cloze_layout for the cloze scorer", field="--template")
    subject = (item.subject or "").replace("_", " ")
    context = t.context.format(context=item.context, abstract=_abstract(item)) if item.context else ""
    options = t.option_separator.join(t.option.format(letter=LETTERS[i], text=o) for i, o in enumerate(item.options))
    return layout.format(instruction=t.cloze_instruction if cloze else t.instruction, context=context,
                         question=item.question, options=options, subject=subject)


def _shots(item: MCQItem, t: Template, cloze: bool) -> str:
    if not t.fewshot.n:
        return ""
    pool = [it for it in _fewshot_pool(t.fewshot.source, t.fewshot.seed) if it.id != item.id][: t.fewshot.n]
    out = []
    for ex in pool:
        answer = ex.answer_text if cloze or t.choices == "texts" else ex.answer_letter
        cue = t.answer_cue
        out.append(_body(ex, t, cloze) + cue + ("" if cue[-1:].isspace() else " ") + answer + t.fewshot.delimiter)
    return "".join(out)


@functools.lru_cache(maxsize=8)
def _fewshot_pool(source: str, seed: int) -> list[MCQItem]:
    from medtune.data.sources import load_benchmark

    items, _ = load_benchmark([source])
    items = list(items)
    random.Random(seed).shuffle(items)
    return items


def render(item: MCQItem, template: str | Template, tokenizer: Any = None, *, target: str = "letter",
           cloze: bool = False, thinking: bool = False) -> Prompt:
    """Render one question. `cloze=True` leaves the options out and scores their texts instead of letters."""
    if isinstance(template, str):
        template = load_template(resolve_template(template, tokenizer))
    t = template.for_item(item)
    subject = (item.subject or "").replace("_", " ")
    text = t.description.format(subject=subject) + _shots(item, t, cloze) + _body(item, t, cloze) + t.answer_cue
    choices = item.options if cloze or t.choices == "texts" else tuple(LETTERS[: len(item.options)])
    tgt = target_text(item, target, t)
    if t.chat:
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise MedtuneError("this tokenizer has no chat template; use --template plain", field="--template")
        text = render_chat(tokenizer, t.system, text, thinking)
    elif t.system:
        text = t.system + "\n\n" + text
    return Prompt(text, tgt, choices)


def lm_eval_task(item: MCQItem, template: str | Template = "lm-eval") -> str | None:
    """The lm-eval task name a question belongs to under a template family (e.g. mmlu_anatomy)."""
    t = load_template(template).for_item(item)
    if t.lm_eval_task is None:
        return None
    return t.lm_eval_task.format(subject_id=(item.subject or "").replace(" ", "_"))

"""Answer questions with a model: the one predictor behind `medtune ask`, the Gradio app and the HTTP API.

Probabilities come from the same scorer as `medtune eval` (softmax over the options' scores), so the
same question gives the same probabilities here as in an eval's predictions.jsonl, every time: no
sampling anywhere. `--explain` adds a greedy, length-bounded explanation after the chosen answer.
With the generative scorer the model writes its answer (greedy; thinking on or off) and the option is
read from the text exactly as `medtune eval --scorer generate` reads it: the result carries the reply,
the reasoning, and no probabilities; an answer that cannot be read is `answer: None`, never a guess.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from medtune.data.schema import LETTERS, MCQItem
from medtune.errors import MedtuneError
from medtune.eval.confidence import policy, verdict
from medtune.eval.report import NOTICE
from medtune.runfolder import RunFolder
from medtune.serve.limits import GENERATE_TOKENS, check_questions
from medtune.serve.question import Question

EXPLAIN_TOKENS = 96  # default length bound of an explanation


@dataclass
class Source:
    """What to load: a base model, optionally an adapter, and the template/scorer to answer with."""

    model: str | None = None
    adapter: str | None = None
    template: str = "auto"
    scorer: str = "letter"
    thinking: bool = False  # generative scorer: the chat template's thinking mode (Qwen3's enable_thinking)
    run: str | None = None
    temperature: float | None = None  # the run's fitted confidence temperature (medtune.eval.confidence)
    abstain_below: float | None = None  # withhold answers less confident than this (the run's, or --abstain-below)
    base_hub_id: str | None = None
    extra: dict = field(default_factory=dict)


def trained_folder(run: Path, summary: dict) -> Path:
    """A run's adapter/ or model/ folder: the path its metrics.json records, or the folder of that name in
    the run (when the run was made from another working directory or moved)."""
    trained = Path(summary["output"])
    return trained if trained.is_dir() else run / trained.name


def source_from_run(run: str, template: str | None = None, scorer: str | None = None,
                    thinking: bool | None = None) -> Source:
    """A training run folder → its base model and adapter (or its trained model), with the template,
    scorer (and, for the generative scorer, thinking mode) its final evaluation used, so that answers
    match that evaluation's predictions."""
    import yaml

    folder = RunFolder(run)
    if not folder.metrics.is_file() or not folder.recipe.is_file():
        raise MedtuneError("not a finished training run (no metrics.json and recipe.yaml); pass a folder "
                           "written by medtune train or medtune demo", path=str(folder), field="--run")
    summary = folder.read_json(folder.metrics)
    recipe = yaml.safe_load(folder.recipe.read_text(encoding="utf-8"))
    trained = trained_folder(folder.root, summary)
    final = folder.read_json_or_none(folder.final.metrics) or {}
    man = final.get("manifest", {})
    tpl = template or man.get("template") or summary.get("template") or "auto"
    sc = scorer or (man.get("scorers") or [recipe.get("train", {}).get("eval_scorer", "letter")])[0]
    # the generative scorer's own figures sit beside its result in metrics.json
    recorded = (final.get("results") or {}).get("generate", {}).get("thinking", False)
    think = bool(recorded) if thinking is None else thinking
    temperature, threshold = policy(final)
    if trained.name == folder.adapter.name:
        return Source(model=recipe["model"]["name"], adapter=str(trained), template=tpl, scorer=sc,
                      thinking=think, run=str(folder), temperature=temperature, abstain_below=threshold)
    return Source(model=str(trained), adapter=None, template=tpl, scorer=sc, thinking=think, run=str(folder),
                  temperature=temperature, abstain_below=threshold)


def public_info(info: dict) -> dict:
    """Answerer.info() fit to show a client: no path of this machine (the adapter relative to its run, a
    local model by its folder name)."""
    from medtune.manifest import shareable

    return shareable(info, info.get("run") or ".")


class Answerer:
    """A loaded model that answers questions; thread-safe (one forward pass at a time)."""

    def __init__(self, source: Source, *, device: str | None = None, dtype: str = "auto",
                 batch_size: int | None = None, trust_remote_code: bool = False, place: Any = None):
        from medtune.backend import default_batch_size
        from medtune.eval.runtime import RuntimeSpec, load_runtime
        from medtune.eval.scorers import get_scorer

        if not get_scorer(source.scorer).user_facing:
            raise MedtuneError(f"the {source.scorer} scorer is chosen by the model, not asked for", field="--scorer")
        self.source = source
        rt = load_runtime(RuntimeSpec(model=source.model, adapter=source.adapter, trust_remote_code=trust_remote_code,
                                      device=device, dtype=dtype, template=source.template, scorer=source.scorer,
                                      place=place), quiet=True)
        self.backend, self.ref, self.tokenizer, self.model = rt.backend, rt.ref, rt.tokenizer, rt.model
        self.is_encoder, self.template, self.scorer = rt.encoder, rt.template, rt.scorer.name
        if self.is_encoder and get_scorer(source.scorer).generative:
            raise MedtuneError(f"{self.ref.name} is an encoder with a multiple-choice head: it scores options but "
                               "cannot write an answer; drop --scorer generate", field="--scorer")
        self.generative = rt.scorer.generative
        self.batch_size = batch_size or default_batch_size(self.backend)
        self._lock = threading.Lock()

    def info(self) -> dict:
        """What answers: model, adapter, backend, template and scorer (shown by the app and GET /v1/model)."""
        from medtune import __version__

        return {"model": self.ref.name, "model_note": self.ref.note, "adapter": self.source.adapter,
                "run": self.source.run, "backend": self.backend.to_dict(), "template": self.template,
                "scorer": self.scorer, "thinking": self.source.thinking if self.generative else None,
                "medtune": __version__, "notice": NOTICE}

    def answer(self, questions: Sequence[Question], explain: bool = False,
               max_new_tokens: int | None = None) -> list[dict]:
        """One result per question: letter, text, index and every option's probability; with the generative
        scorer the letter read from the model's reply (None when unreadable), the reply and its reasoning.
        `max_new_tokens`: the explanation's bound (default 96), or the reply's (default 256) when generating."""
        import torch

        from medtune.eval.run import score_items
        from medtune.eval.scoring import softmax

        check_questions(self, questions)
        items = [q.to_item(i) for i, q in enumerate(questions)]
        if self.generative:
            return self._generate(items, max_new_tokens or GENERATE_TOKENS)
        with self._lock, torch.inference_mode():
            scores, _ = score_items(self.model, self.tokenizer, items, self.scorer, self.template,
                                    batch_size=self.batch_size, device=self.backend.device)
        name = next(iter(scores))
        out = []
        for item, s in zip(items, scores[name]):
            p = softmax(s)
            best = max(range(len(p)), key=lambda j: p[j])
            out.append({"answer": LETTERS[best], "answer_text": item.options[best], "index": best,
                        "probabilities": {LETTERS[j]: p[j] for j in range(len(p))},
                        "scores": list(s), "scorer": name,
                        **verdict(p, self.source.temperature, self.source.abstain_below)})
        if explain:
            for item, row in zip(items, out):
                row["explanation"] = self.explain(item, row["index"], max_new_tokens or EXPLAIN_TOKENS)
        return out

    def _generate(self, items: list[MCQItem], max_new_tokens: int) -> list[dict]:
        """Generative answers: the option read from each greedy reply (the reply explains itself)."""
        import torch

        from medtune.eval.generate import generate_answers

        with self._lock, torch.inference_mode():
            gens = generate_answers(self.model, self.tokenizer, items, max_new_tokens=max_new_tokens,
                                    thinking=self.source.thinking, batch_size=self.batch_size,
                                    device=self.backend.device)
        return [{"answer": None if g.index is None else LETTERS[g.index],
                 "answer_text": None if g.index is None else item.options[g.index], "index": g.index,
                 "probabilities": None, "scorer": "generate", "reply": g.answer_text, "reasoning": g.reasoning,
                 "generation": g.text, "extraction": g.how, "new_tokens": g.n_new_tokens,
                 "truncated": g.n_new_tokens >= max_new_tokens}
                for item, g in zip(items, gens)]

    def explain(self, item: MCQItem, index: int, max_new_tokens: int = EXPLAIN_TOKENS) -> str | None:
        """A greedy explanation of the chosen option (None for encoders, which cannot write)."""
        import torch

        from medtune.data.prompts import render

        if self.is_encoder:
            return None
        prompt = render(item, self.template, self.tokenizer).prompt
        prompt += f"{LETTERS[index]}. {item.options[index]}\nExplanation:"
        ids = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(self.backend.device)
        with self._lock, torch.inference_mode():
            gen = self.model.generate(**ids, do_sample=False, max_new_tokens=max_new_tokens,
                                      pad_token_id=self.tokenizer.pad_token_id)
        text = self.tokenizer.decode(gen[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
        return text.strip()

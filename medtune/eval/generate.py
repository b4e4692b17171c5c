"""The generative scorer (`--scorer generate`): the model writes an answer, `extract` reads the option.

The prompt is a chat turn with the question, its lettered options and an instruction to end with
"Answer: <letter>" (`generative_prompt`); thinking models (Qwen3) run with `enable_thinking` on or off.
Generation is greedy (`do_sample=False`) with the KV cache, in left-padded batches of prompts of
similar length, each stopping at end-of-sequence or `max_new_tokens`. An answer that cannot be read
is counted wrong and reported as its own figure, never replaced by a default letter.

HF `generate` always; vLLM instead when asked for (`backend="vllm"`) and installed (see `_vllm_texts`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from medtune.data.schema import LETTERS, MCQItem
from medtune.errors import MedtuneError
from medtune.eval.extract import extract_answer, split_thinking
from medtune.eval.output import ScorerOutput

INSTRUCTION = "Answer the following multiple-choice question about medicine."
FINAL_LINE = ('End your reply with a final line of the form "Answer: X", where X is the letter of the '
              "correct option ({letters}).")
UNPARSEABLE_SCORE = -1e9  # the score of every option but the chosen one (softmax: ~0)


@dataclass
class Generated:
    """One generation: the raw text, its reasoning and reply parts, the option read from it."""

    text: str  # everything generated (special tokens removed)
    reasoning: str  # the <think> block's content ("" when there is none)
    answer_text: str  # the reply after the reasoning: what the extractor read
    index: int | None  # the option chosen, None when no answer could be read
    how: str  # which extraction rule found it (see medtune.eval.extract)
    n_new_tokens: int  # tokens generated, the end-of-sequence token included


def question_text(item: MCQItem) -> str:
    """The user turn: instruction, context, question, lettered options and the answer-line instruction."""
    letters = [LETTERS[i] for i in range(len(item.options))]
    options = "\n".join(f"{letter}. {opt}" for letter, opt in zip(letters, item.options))
    context = f"Context:\n{item.context}\n\n" if item.context else ""
    final = FINAL_LINE.format(letters=", ".join(letters[:-1]) + " or " + letters[-1])
    return f"{INSTRUCTION}\n\n{context}Question: {item.question}\n{options}\n\n{final}"


def supports_thinking(tokenizer: Any) -> bool:
    """Whether the tokenizer's chat template has a thinking switch (`enable_thinking`, as Qwen3's)."""
    template = getattr(tokenizer, "chat_template", None)
    return isinstance(template, str) and "enable_thinking" in template


def generative_prompt(item: MCQItem, tokenizer: Any, *, thinking: bool = False) -> str:
    """The text the model continues: its chat template around `question_text` (thinking on or off where
    the template has the switch), or the plain text followed by "Answer:" when it has no chat template."""
    body = question_text(item)
    if not getattr(tokenizer, "chat_template", None):
        return body + "\nAnswer:"
    kwargs = {"enable_thinking": thinking} if supports_thinking(tokenizer) else {}
    return tokenizer.apply_chat_template([{"role": "user", "content": body}], tokenize=False,
                                         add_generation_prompt=True, **kwargs)


def _encode(tokenizer: Any, prompt: str) -> list[int]:
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    bos = tokenizer.bos_token_id
    if getattr(tokenizer, "add_bos_token", False) and bos is not None and (not ids or ids[0] != bos):
        ids = [bos] + ids
    return ids


def stop_ids(model: Any, tokenizer: Any) -> list[int]:
    """The end-of-sequence ids generation stops at: the tokenizer's and the model's generation config's."""
    found = [tokenizer.eos_token_id]
    config = getattr(model, "generation_config", None)
    extra = getattr(config, "eos_token_id", None)
    found += extra if isinstance(extra, (list, tuple)) else [extra]
    return sorted({i for i in found if i is not None})


def _hf_generate(model: Any, tokenizer: Any, batch: list[list[int]], *, max_new_tokens: int,
                 eos: list[int], device: str) -> list[list[int]]:
    """Greedy continuations of left-padded prompts, each cut after its first end-of-sequence token."""
    import torch
    from transformers import GenerationConfig

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0]
    width = max(map(len, batch))
    ids = torch.tensor([[pad] * (width - len(b)) + b for b in batch], device=device)
    mask = torch.tensor([[0] * (width - len(b)) + [1] * len(b) for b in batch], device=device)
    config = GenerationConfig(do_sample=False, max_new_tokens=max_new_tokens, eos_token_id=eos,
                              pad_token_id=pad, use_cache=True)
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
    rows = []
    for row in out[:, width:].tolist():
        end = next((k for k, t in enumerate(row) if t in eos), None)
        rows.append(row if end is None else row[: end + 1])
    return rows


def _vllm_texts(model: Any, prompts: list[str], max_new_tokens: int, eos: list[int]) -> list[list[int]]:
    """The same greedy continuations from vLLM (optional: only when installed and asked for)."""
    try:
        from vllm import LLM, SamplingParams
    except ImportError:
        raise MedtuneError("vLLM is not installed (pip install vllm); the default backend is hf",
                           field="--generate-backend") from None
    if hasattr(model, "peft_config"):
        raise MedtuneError("the vLLM backend loads plain weights; merge the adapter first (medtune export) "
                           "or use the hf backend", field="--generate-backend")
    path = getattr(model, "name_or_path", None) or model.config._name_or_path
    llm = LLM(model=path, dtype="auto")
    params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens, stop_token_ids=eos)
    return [list(r.outputs[0].token_ids) for r in llm.generate(prompts, params)]


def generate_answers(model: Any, tokenizer: Any, items: Sequence[MCQItem], *, max_new_tokens: int = 256,
                     thinking: bool = False, batch_size: int = 8, device: str = "cpu", progress: Any = None,
                     backend: str = "hf", processes: tuple[int, int] = (0, 1)) -> list[Generated]:
    """Greedy generation for every question (batched by prompt length), with the option read from each.
    `processes=(rank, world)`: each process of a launcher's group generates its share of the batches and
    all get every answer back."""
    if max_new_tokens < 1:
        raise MedtuneError(f"must be at least 1, got {max_new_tokens}", field="--max-new-tokens")
    if backend not in ("hf", "vllm"):
        raise MedtuneError(f"unknown generation backend {backend!r}; choose hf or vllm", field="--generate-backend")
    prompts = [generative_prompt(it, tokenizer, thinking=thinking) for it in items]
    eos = stop_ids(model, tokenizer)
    with _bar(progress, len(items)) as bar:
        new = _generate_ids(model, tokenizer, prompts, max_new_tokens=max_new_tokens, eos=eos,
                            batch_size=batch_size, device=device, progress=bar, backend=backend,
                            processes=processes)
    return [_read(tokenizer, it, p, ids) for it, p, ids in zip(items, prompts, new)]


def _generate_ids(model: Any, tokenizer: Any, prompts: list[str], *, max_new_tokens: int, eos: list[int],
                  batch_size: int, device: str, progress: Any, backend: str,
                  processes: tuple[int, int] = (0, 1)) -> list[list[int]]:
    """The new token ids per prompt, in the prompts' order. Process `rank` of `world` generates every
    world-th batch of the one-process order, so each batch, and so each answer, is the one a single
    process would generate."""
    if backend == "vllm":
        new = _vllm_texts(model, prompts, max_new_tokens, eos)
        progress.update(len(prompts))
        return new
    encoded = [_encode(tokenizer, p) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))  # similar lengths share a batch
    rank, world = processes
    batches = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
    mine: list[tuple[int, list[int]]] = []
    for idx in batches[rank::world]:
        got = _hf_generate(model, tokenizer, [encoded[i] for i in idx], max_new_tokens=max_new_tokens,
                           eos=eos, device=device)
        mine.extend(zip(idx, got))
        progress.update(len(idx))
    if world > 1:
        from accelerate.utils import gather_object

        mine = gather_object(mine)
    new: list[list[int]] = [[] for _ in prompts]
    for i, row in mine:
        new[i] = row
    return new


def _bar(progress: Any, total: int) -> Any:
    """A progress bar: the caller's (anything with update()), a new one for True, none for False/None."""
    import contextlib
    import sys

    if hasattr(progress, "update"):
        return contextlib.nullcontext(progress)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="generating", unit="q", disable=not progress, file=sys.stderr)


def _read(tokenizer: Any, item: MCQItem, prompt: str, ids: list[int]) -> Generated:
    text = tokenizer.decode(ids, skip_special_tokens=True)
    # a template that opens the think block in the prompt (DeepSeek-R1 style): the text continues inside it
    seen = "<think>" + text if prompt.rstrip().endswith("<think>") and "<think>" not in text else text
    reasoning, answer = split_thinking(seen)
    found = extract_answer(seen, item.options)
    return Generated(text=text, reasoning=reasoning, answer_text=answer, index=found.index, how=found.how,
                     n_new_tokens=len(ids))


def one_hot_scores(index: int | None, n_options: int) -> list[float]:
    """0 for the chosen option and a large negative number for the others; all equal when none was chosen."""
    if index is None:
        return [0.0] * n_options
    return [0.0 if j == index else UNPARSEABLE_SCORE for j in range(n_options)]


def score_generate(model: Any, tokenizer: Any, items: Sequence[MCQItem], template: Any = None, *,
                   batch_size: int = 8, device: str = "cpu", progress: Any = None, max_new_tokens: int = 256,
                   thinking: bool = False, backend: str = "hf",
                   processes: tuple[int, int] = (0, 1)) -> ScorerOutput:
    """The `generate` scorer: the option each generation names (None: unparseable, counted wrong), the raw
    generations for predictions.jsonl and the unparseable count and rate for metrics.json. The prompt is
    the generative one (`generative_prompt`) whatever `template` is."""
    gens = generate_answers(model, tokenizer, items, max_new_tokens=max_new_tokens, thinking=thinking,
                            batch_size=batch_size, device=device, progress=progress, backend=backend,
                            processes=processes)
    n = len(gens)
    unparseable = sum(g.index is None for g in gens)
    hit_limit = sum(g.n_new_tokens >= max_new_tokens for g in gens)
    extra = {"unparseable": unparseable, "unparseable_rate": unparseable / n if n else 0.0,
             "mean_new_tokens": sum(g.n_new_tokens for g in gens) / n if n else 0.0,
             "hit_max_new_tokens": hit_limit, "max_new_tokens": max_new_tokens, "thinking": thinking,
             "thinking_supported": supports_thinking(tokenizer),
             "extraction": _count(g.how for g in gens)}
    rows = [{"generation": g.text, "reasoning": g.reasoning, "extraction": g.how} for g in gens]
    scores = [one_hot_scores(g.index, len(it.options)) for g, it in zip(gens, items)]
    return ScorerOutput(scores={"generate": scores}, predicted={"generate": [g.index for g in gens]}, rows=rows,
                        extra=extra)


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return dict(sorted(out.items()))

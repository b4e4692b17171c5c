"""`load_runtime`: the one way in. Backend, tokenizer, template, model (with its adapter, quantization and
device map) and scorer, built once for every verb: train, bench, eval, ask/serve and GRPO.

Each verb says what it wants in a `RuntimeSpec` (train fills it from the recipe and its METHODS entry:
`medtune.train.run.runtime_spec`); whether the model is an encoder with a multiple-choice head is read from
the model itself, and an encoder takes the encoder scorer and no template.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any

from medtune.errors import MedtuneError
from medtune.eval.scorers import Scorer, scorer_for


@dataclass(frozen=True)
class RuntimeSpec:
    """What to load and how it will run."""

    model: str | None  # embedded name, folder or Hub id
    adapter: str | None = None  # a PEFT adapter to attach for inference
    trust_remote_code: bool = False
    device: str | None = None  # None: the best available
    dtype: str = "auto"  # the weights' dtype (a method's load dtype when training)
    template: str = "auto"
    scorer: str = "letter"
    quantization: Any = None  # a transformers quantization config (a 4-bit base)
    attn_implementation: str | None = None
    place: Any = None  # medtune.models.devicemap.Placement: a device map with memory limits
    tokenizer: str | None = None  # a tokenizer from elsewhere (bench with a random-weight shape)
    encoder: bool | None = None  # the model kind a training method needs (None: any)
    who: str = ""  # what asked for it, for the error on a wrong model kind (e.g. "method lora")


@dataclass
class Runtime:
    """Everything a verb needs to score or train: the model ready on its backend, and how it is prompted."""

    backend: Any
    ref: Any
    tokenizer: Any
    template: str
    model: Any
    scorer: Scorer
    encoder: bool
    load_s: float


def load_runtime(spec: RuntimeSpec, model: Any = None, tokenizer: Any = None, quiet: bool = False) -> Runtime:
    """Build the runtime a spec describes (or wrap a model and tokenizer already loaded)."""
    from medtune.backend import select_backend
    from medtune.eval.choice import is_multiple_choice
    from medtune.models import model_kind, resolve_model

    backend = select_backend(spec.device, spec.dtype)
    ref = resolve_model(spec.model)
    if spec.encoder is not None and model is None and spec.encoder != (model_kind(ref, spec.trust_remote_code)
                                                                       == "encoder"):
        raise MedtuneError(f"{spec.who} needs {'an encoder' if spec.encoder else 'a causal LM'}; {ref.name} is "
                           f"{'a causal LM' if spec.encoder else 'an encoder'}", field="model.name")
    if ref.note and model is None and not quiet:
        print(f"medtune: model {ref.name}: {ref.note}", file=sys.stderr)
    t0 = time.perf_counter()
    tokenizer = tokenizer if tokenizer is not None else _tokenizer(spec, ref)
    model = model if model is not None else _model(spec, ref, backend)
    encoder = is_multiple_choice(model)
    return Runtime(backend, ref, tokenizer, _template(spec.template, tokenizer, encoder), model,
                   scorer_for(spec.scorer, encoder), encoder, time.perf_counter() - t0)


def _tokenizer(spec: RuntimeSpec, ref: Any) -> Any:
    from medtune.models import load_tokenizer, resolve_tokenizer

    return load_tokenizer(resolve_tokenizer(spec.tokenizer) if spec.tokenizer else ref, spec.trust_remote_code)


def _model(spec: RuntimeSpec, ref: Any, backend: Any) -> Any:
    """An encoder with its multiple-choice head, or a causal LM with its adapter, quantization and placement."""
    from medtune.models import load_causal_lm, load_encoder, model_kind

    if model_kind(ref, spec.trust_remote_code) != "encoder":
        return load_causal_lm(ref, backend, spec.adapter, spec.trust_remote_code,
                              quantization_config=spec.quantization, attn_implementation=spec.attn_implementation,
                              place=spec.place)
    if spec.adapter:
        raise MedtuneError("encoders are fine-tuned whole (method multiple_choice): pass the run's model/ "
                           "folder as --model instead of an adapter", field="--adapter")
    if spec.place is not None:
        raise MedtuneError("encoders load whole; --device-map splits causal LMs", field="--device-map")
    return load_encoder(ref, backend, spec.trust_remote_code)


def _template(name: str, tokenizer: Any, encoder: bool) -> str:
    from medtune.data.prompts import resolve_template

    return "none" if encoder else resolve_template(name, tokenizer)

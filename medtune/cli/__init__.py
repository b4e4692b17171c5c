"""The `medtune` command line: a table of contents.

Each verb lives in its own module under `medtune/cli/`, which declares its arguments
(`add_arguments(parser)`) and runs it (`main(args) -> exit code`). Only the module of the verb
being run is imported, and it imports heavy libraries inside `main`, so torch is never imported
before the environment (device variables, a recipe's `env:`) is set up.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import warnings
from typing import Sequence

from medtune import __version__
from medtune.errors import MedtuneError, did_you_mean

# verb: one-line help (the module is medtune.cli.<verb>)
VERBS = {
    "data": "inspect, check and split benchmark files",
    "eval": "score a model on a benchmark or a suite; or compare two eval folders",
    "train": "fine-tune from a recipe: medtune train RECIPE.yaml [key=value ...]",
    "demo": "the main job: baseline eval, LoRA fine-tune, eval and comparison on the embedded model and "
            "the shipped MedMCQA data (configs/demo-cpu.yaml)",
    "export": "write a run's model: the adapter merged into the base weights",
    "doctor": "what this machine offers (ROCm, CUDA, MPS, CPU) and what to change",
    "plan": "will a model fit for training: memory per part, per method and GPU",
    "ask": "answer a question: the option probabilities from the eval scorer",
    "serve": "serve a model: the Gradio app (--ui) or the HTTP API (--api)",
    "report": "one self-contained HTML report of a run (plots embedded)",
    "push": "publish a run to the Hugging Face Hub: card, adapter, report, manifest",
    "space": "write a ready Hugging Face Space folder running the app on a run",
    "bench": "throughput of a recipe's training step or evaluation; writes JSON",
}
GLOBAL_WITH_VALUE = ("--devices", "--gfx-override")
OVERRIDE = re.compile(r"^[A-Za-z_][\w.]*=")


def _chosen_verb(argv: Sequence[str]) -> str | None:
    """The verb on the command line (the first word that is not a global option or its value)."""
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word in GLOBAL_WITH_VALUE:
            skip = True
        elif not word.startswith("-"):
            return word
    return None


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """The parser: every verb listed, only `verb`'s own arguments declared (its module imported)."""
    parser = argparse.ArgumentParser(prog="medtune", description="Fine-tune and evaluate language models for "
                                     "clinical multiple-choice QA on ROCm, CUDA and the CPU.")
    parser.add_argument("--version", action="version", version=f"medtune {__version__}")
    parser.add_argument("--verbose", action="store_true", help="show the libraries' own warnings and loading "
                                                               "bars (hidden by default)")
    parser.add_argument("--devices", help="GPU indices to use, e.g. 0,1 (sets CUDA_VISIBLE_DEVICES and "
                                          "HIP_VISIBLE_DEVICES before torch loads)")
    parser.add_argument("--gfx-override", help="HSA_OVERRIDE_GFX_VERSION for consumer AMD GPUs without native "
                                               "kernels, e.g. 11.0.0 (see medtune doctor)")
    sub = parser.add_subparsers(dest="verb", metavar="COMMAND", required=True)
    for name, help_text in VERBS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == verb:
            module = importlib.import_module(f"medtune.cli.{name}")
            module.add_arguments(p)
            p.set_defaults(func=module.main)
    return parser


def quiet_libraries(verbose: bool) -> None:
    """Hide the libraries' FutureWarnings, advisory warnings and loading bars unless --verbose."""
    if verbose:
        os.environ["MEDTUNE_VERBOSE"] = "1"
        return
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for category in (FutureWarning, DeprecationWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category,
                                module=r"(torch|transformers|peft|accelerate|trl|datasets|huggingface_hub)(\.|$)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; user errors print one line and exit non-zero, never a traceback."""
    torch_imported_early = "torch" in sys.modules  # medtune itself never imports it before this point
    argv = list(sys.argv[1:] if argv is None else argv)
    verb = _chosen_verb(argv)
    if verb is not None and verb not in VERBS:
        print(f"medtune: error: unknown command {verb!r}{did_you_mean(verb, VERBS)}; commands: "
              f"{', '.join(VERBS)}", file=sys.stderr)
        return 2
    parser = build_parser(verb)
    args, extra = parser.parse_known_args(argv)
    if extra:  # KEY=VALUE overrides written after options (argparse only takes them before)
        if hasattr(args, "overrides") and all(OVERRIDE.match(x) for x in extra):
            args.overrides = [*(args.overrides or []), *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.torch_imported_early = torch_imported_early
    quiet_libraries(args.verbose)
    old = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}
    if vars(args).get("dtype") in old:  # verbs with a --dtype flag
        print(f"medtune: warning: --dtype {args.dtype} is now spelled {old[args.dtype]}; the old spelling goes "
              "in the next release", file=sys.stderr)
    try:
        if args.devices is not None or args.gfx_override is not None:
            from medtune.backend import apply_device_env

            for warning in apply_device_env(args.devices, args.gfx_override):
                print(f"medtune: warning: {warning}", file=sys.stderr)
        return args.func(args)
    except MedtuneError as err:
        print(str(err) if err.path else f"medtune: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("medtune: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 141
    except OSError as err:  # a full disk, a file or folder without permission: the system's words, one line
        print(f"{err.filename}: {err.strerror or err}" if err.filename else f"medtune: error: {err.strerror or err}",
              file=sys.stderr)
        return 2

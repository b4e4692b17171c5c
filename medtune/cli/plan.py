"""`medtune plan [RECIPE] [key=value ...] --gpu NAME`: will it fit for training, per part, method and GPU.

The training shape comes from the recipe (model.name, method, train.batch_size, data.max_length,
model.gradient_checkpointing, lora.r), so the plan is of the run `medtune train` would make; the
flags of the same names (generated from the recipe's dataclasses) override it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from medtune.config import add_fields, given_fields
from medtune.errors import MedtuneError

# old spelling -> the one spelling, accepted for one release
DEPRECATED = {"--batch": "--batch-size", "--seq-len": "--max-length", "--grad-ckpt": "--gradient-checkpointing"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """A recipe and overrides, the recipe fields that shape memory, the GPU."""
    from medtune.train.recipe import DataArgs, LoraArgs, ModelArgs, Recipe, TrainArgs

    p.add_argument("recipe", nargs="?", help="a YAML recipe or a shipped recipe's name (default: the defaults)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted recipe overrides")
    add_fields(p, ModelArgs, ["name", "gradient_checkpointing"], name={"flags": ["--model"], "help":
               "local folder, config.json, shipped shape (qwen3-1.7b), embedded name or Hub id; only config.json "
               "is read (default: the recipe's model)"}, gradient_checkpointing={"flags": [
                   "--gradient-checkpointing", "--grad-ckpt"]})
    add_fields(p, Recipe, ["method"])
    add_fields(p, TrainArgs, ["batch_size"], batch_size={"flags": ["--batch-size", "--batch"]})
    add_fields(p, DataArgs, ["max_length"], max_length={"flags": ["--max-length", "--seq-len"]})
    add_fields(p, LoraArgs, ["r"])
    p.add_argument("--gpu", default="h100", help="mi300x, mi325x, mi250, h100, h200, a100-40, a100-80, rx7900xtx, "
                                                "rtx4090 or cpu")
    p.add_argument("--gpus", type=int, default=1, help="GPUs training together: the plan is per GPU")
    p.add_argument("--strategy", default="ddp", help="ddp (weights and optimizer state on every GPU), fsdp or "
                                                     "zero3 (both sharded across the GPUs)")
    p.add_argument("--table", action="store_true", help="methods x GPUs: the largest micro-batch that fits")
    p.add_argument("--json", action="store_true")


def recipe_for(args: argparse.Namespace) -> object:
    """The recipe named (or the defaults), with overrides and the plan flags applied."""
    from medtune.train.recipe import DataArgs, LoraArgs, ModelArgs, Recipe, TrainArgs, load_recipe

    if args.recipe is None and args.name is None:
        raise MedtuneError("name a recipe (e.g. qwen3-1.7b-medmcqa-lora) or a model with --model", field="--model")
    r = load_recipe(args.recipe, args.overrides)
    return dataclasses.replace(
        r, **given_fields(args, Recipe),
        model=dataclasses.replace(r.model, **given_fields(args, ModelArgs)),
        train=dataclasses.replace(r.train, **given_fields(args, TrainArgs)),
        data=dataclasses.replace(r.data, **given_fields(args, DataArgs)),
        lora=dataclasses.replace(r.lora, **given_fields(args, LoraArgs)))


# tokens of the answer the model learns, by data.target, when the loss is on the answer only
ANSWER_TOKENS = {"letter": 4, "letter_text": 48}


def labelled_positions(r: object) -> int | None:
    """Positions per example the LM head runs on: the answer's tokens with answer-only loss (an explanation
    may take up to half of max_length), else every position (None)."""
    if r.data.loss_on != "answer":
        return None
    return ANSWER_TOKENS.get(r.data.target, r.data.max_length // 2)


def main(args: argparse.Namespace) -> int:
    """Print the plan; exit 1 when it does not fit."""
    from medtune.plan import plan
    from medtune.plan_text import format_plan, table
    from medtune.train.methods import get_method

    for old, new in DEPRECATED.items():
        if any(a == old or a.startswith(old + "=") for a in sys.argv):
            print(f"medtune: warning: {old} is now {new}; the old spelling goes in the next release", file=sys.stderr)
    r = recipe_for(args)
    m = get_method(r.method)
    if m.plan_as:  # planned as another method's training, with a note on what comes on top
        print(f"medtune: {m.plan_note}", file=sys.stderr)
        r = dataclasses.replace(r, method=m.plan_as)
    shape = {"batch": r.train.batch_size, "seq_len": r.data.max_length, "grad_ckpt": r.model.gradient_checkpointing}
    if args.table:
        print(table(r.model.name, **shape))
        return 0
    result = plan(r.model.name, r.method, args.gpu, r=r.lora.r, labelled=labelled_positions(r), layers=r.lora.layers,
                  gpus=args.gpus, strategy=args.strategy, **shape)
    print(json.dumps(result, indent=2) if args.json else format_plan(result))
    return 0 if result["estimate"]["fits"] else 1

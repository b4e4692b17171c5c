"""`medtune train RECIPE [key=value ...]`."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    """A recipe, dotted overrides, --resume and --help-recipe."""
    p.add_argument("recipe", nargs="?", help="a YAML recipe (see configs/) or a shipped recipe's name; "
                                             "omitted: the defaults")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. train.lr=1e-4")
    p.add_argument("--resume", action="store_true", help="continue the run in output_dir from its last "
                                                         "complete checkpoint")
    p.add_argument("--help-recipe", action="store_true", help="list every recipe key with its default and help")


def main(args: argparse.Namespace) -> int:
    """Train per the recipe and print where the results are."""
    from medtune.train.recipe import describe_recipe, load_recipe

    if args.help_recipe:
        print("\n".join(describe_recipe()))
        return 0
    recipe = load_recipe(args.recipe, args.overrides)
    from medtune.train.run import run_train  # imports no torch: run_train sets recipe.env first

    summary = run_train(recipe, resume=args.resume)
    if "total_seconds" in summary:  # the first process's summary; the others trained in step and return theirs
        print(f"wrote {summary['output']} · run folder {recipe.output_dir} · {summary['total_seconds']:.0f} s")
    return 0

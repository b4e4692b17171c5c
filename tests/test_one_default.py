"""Every recipe and eval setting has exactly one default, written in its dataclass with its help line;
no command-line flag repeats a default for a setting of the same name."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

from conftest import medtune_sources
from medtune.config import default_of, is_section

ROOT = Path(__file__).resolve().parent.parent / "medtune"


def config_classes() -> list[type]:
    """The recipe's section dataclasses and the eval settings."""
    from medtune.eval.run import EvalConfig
    from medtune.train.recipe import Recipe

    out, todo = [], [Recipe]
    while todo:
        cls = todo.pop()
        out.append(cls)
        todo += [f.default_factory for f in dataclasses.fields(cls) if is_section(f)]
    return out + [EvalConfig]


def setting_names() -> dict[str, str]:
    """Every setting's name -> the dataclass field that owns its default."""
    names = {}
    for cls in config_classes():
        for f in dataclasses.fields(cls):
            if not is_section(f):
                names.setdefault(f.name, f"{cls.__name__}.{f.name}")
    return names


def repeated_defaults(source: str, filename: str, names: dict[str, str]) -> list[str]:
    """`add_argument` calls in `source` that give a default to a flag named like a setting."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument"):
            continue
        kw = {k.arg: k.value for k in node.keywords}
        default = kw.get("default")
        if default is None or (isinstance(default, ast.Constant) and default.value is None):
            continue
        flags = [a.value for a in node.args if isinstance(a, ast.Constant) and str(a.value).startswith("--")]
        dest = kw["dest"].value if isinstance(kw.get("dest"), ast.Constant) else None
        for name in [dest] + [f[2:].replace("-", "_") for f in flags]:
            if name in names:
                out.append(f"{filename}:{node.lineno}: {flags[0] if flags else name} repeats the default of "
                           f"{names[name]}; generate the flag from the dataclass (medtune.config.add_fields)")
                break
    return out


def hidden_defaults(source: str, filename: str, names: dict[str, str]) -> list[str]:
    """`getattr(obj, "setting", default)` calls: a second default for a setting, hidden at its use."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
                and len(node.args) == 3 and isinstance(node.args[1], ast.Constant)):
            continue
        name = node.args[1].value
        if name in names:
            out.append(f"{filename}:{node.lineno}: {ast.unparse(node)} gives {names[name]} a second default; "
                       f"read the field (the dataclass has one)")
    return out


def test_no_getattr_gives_a_setting_a_second_default():
    names = setting_names()
    found = [hit for rel, text in medtune_sources() for hit in hidden_defaults(text, rel, names)]
    assert not found, "\n".join(found)


def test_the_check_finds_a_planted_getattr_default():
    source = 'def f(recipe, model):\n    return getattr(recipe.data, "shuffle_options", False), getattr(model, "x", 1)\n'
    assert hidden_defaults(source, "medtune/x.py", setting_names()) == [
        "medtune/x.py:2: getattr(recipe.data, 'shuffle_options', False) gives DataArgs.shuffle_options a second "
        "default; read the field (the dataclass has one)"]


def test_the_run_path_takes_a_typed_recipe():
    """A function's `recipe` parameter is a Recipe, never Any (item 5 rewrites the two bench files it skips)."""
    pending = {"medtune/bench/eval.py", "medtune/bench/train.py"}
    untyped = []
    for rel, text in medtune_sources():
        functions = [n for n in ast.walk(ast.parse(text)) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        untyped += [f"{rel}:{f.lineno}: {f.name}(recipe: Any)" for f in functions if rel not in pending
                    for a in f.args.args + f.args.kwonlyargs
                    if a.arg == "recipe" and a.annotation is not None and ast.unparse(a.annotation) == "Any"]
    assert not untyped, "\n".join(untyped)


def test_every_setting_has_a_default_and_a_help_line():
    for cls in config_classes():
        for f in dataclasses.fields(cls):
            if is_section(f):
                continue
            assert f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING, \
                f"{cls.__name__}.{f.name} has no default"
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help line"
            default_of(f)


def test_no_flag_repeats_a_settings_default():
    names = setting_names()
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        found += repeated_defaults(path.read_text("utf-8"), str(path.relative_to(ROOT.parent)), names)
    assert not found, "\n".join(found)


def test_the_check_finds_a_planted_repeated_default():
    source = 'def add(p):\n    p.add_argument("--lr", type=float, default=1e-3)\n    p.add_argument("--port", default=1)\n'
    assert repeated_defaults(source, "medtune/cli/x.py", setting_names()) == [
        "medtune/cli/x.py:2: --lr repeats the default of TrainArgs.lr; generate the flag from the dataclass "
        "(medtune.config.add_fields)"]


def test_generated_flags_carry_the_dataclass_default_and_help():
    import argparse

    from medtune.config import add_fields, given_fields
    from medtune.train.recipe import TrainArgs

    p = argparse.ArgumentParser()
    add_fields(p, TrainArgs, ["lr", "batch_size", "packing"])
    help_text = p.format_help()
    assert "peak learning rate (default: 0.0002)" in help_text
    assert given_fields(p.parse_args([]), TrainArgs) == {}
    assert given_fields(p.parse_args(["--lr", "1e-4", "--no-packing"]), TrainArgs) == {"lr": 1e-4, "packing": False}

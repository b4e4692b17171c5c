"""Typed configuration machinery: YAML -> `a.b=v` overrides -> dataclasses -> validation.

One dataclass per section; every field has its default and its help in one place (`opt`). Unknown
keys, wrong types and cross-field problems are collected into one `ConfigError` that names the
file, the line and the field of each ("did you mean ..." included). The recipe itself (its
sections and checks) is `medtune.train.recipe`; evaluation settings are `medtune.eval.run.EvalConfig`.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import field
from pathlib import Path
from typing import Any

from medtune.errors import MedtuneError, did_you_mean


def opt(default: Any, help: str, **kw: Any) -> Any:
    """A field with its default and its help line."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help}, **kw)
    return field(default=default, metadata={"help": help}, **kw)


class ConfigError(MedtuneError):
    """Every problem found in a recipe, in one error."""


def load_yaml(path: Path, opaque: tuple[str, ...] = ()) -> tuple[dict, dict[str, int]]:
    """The YAML mapping and the line of each dotted key (keys under `opaque` sections are not walked)."""
    import yaml

    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError("no such recipe file", path=str(path)) from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"invalid UTF-8 byte at offset {err.start}", path=str(path)) from None
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise ConfigError(f"invalid YAML: {getattr(err, 'problem', err)}", path=str(path),
                          line=mark.line + 1 if mark else None) from None
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise ConfigError("a recipe is a YAML mapping (key: value lines)", path=str(path), line=1)
    lines: dict[str, int] = {}

    def walk(n: Any, prefix: str) -> None:
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                key = f"{prefix}{k.value}"
                if key in lines:  # YAML keeps the later value silently; a recipe must not say two things
                    raise ConfigError(f"duplicate key (first at line {lines[key]}); keep one", path=str(path),
                                      line=k.start_mark.line + 1, field=key)
                lines[key] = k.start_mark.line + 1
                if isinstance(v, yaml.MappingNode) and key not in opaque:
                    walk(v, key + ".")
    walk(node, "")
    return data, lines


def _parse_value(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(data: dict, overrides: list[str], errors: list[str]) -> set[str]:
    """Apply `a.b=value` strings (values parsed as YAML scalars or lists) in place; return their keys."""
    keys = set()
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            errors.append(f"override {item!r}: expected key=value, e.g. train.lr=1e-4")
            continue
        parts = key.strip().split(".")
        node = data
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                errors.append(f"override {item!r}: {p} is not a section")
                break
        else:
            node[parts[-1]] = _parse_value(value)
            keys.add(key.strip())
    return keys


def _check_type(value: Any, annotation: Any) -> tuple[bool, Any]:
    """Whether `value` fits the annotation (ints accepted for floats, one string for a list)."""
    if annotation is Any:
        return True, value
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if arg is type(None) and value is None:
                return True, None
        for arg in typing.get_args(annotation):
            if arg is not type(None):
                ok, v = _check_type(value, arg)
                if ok:
                    return True, v
        return False, value
    if origin is list:
        if isinstance(value, str):
            return True, [value]
        return isinstance(value, list), value
    if annotation is dict or origin is dict:
        return isinstance(value, dict), value
    if annotation is bool:
        return isinstance(value, bool), value
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, float(value)
        if isinstance(value, str):  # YAML 1.1 reads 2e-4 (no dot) as a string
            try:
                return True, float(value)
            except ValueError:
                pass
        return False, value
    if annotation is str:
        return isinstance(value, str), value
    return True, value


_TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "text"}


def _type_word(annotation: Any) -> str:
    args = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    words = [_TYPE_WORDS.get(a, "a list" if typing.get_origin(a) is list else getattr(a, "__name__", str(a)))
             for a in args]
    return " or ".join(words) + (" or null" if type(None) in typing.get_args(annotation) else "")


def is_section(f: dataclasses.Field) -> bool:
    """Whether a dataclass field is a nested section (its default is itself a dataclass)."""
    return f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(f.default_factory)


def default_of(f: dataclasses.Field) -> Any:
    """A field's default value (calling its factory for lists and dicts)."""
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]


def build(cls: type, data: dict, prefix: str, where: Any, errors: list[str]) -> Any:
    """An instance of `cls` from a mapping: nested sections built recursively; unknown keys and wrong
    types appended to `errors` as `WHERE key: problem` lines."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    names = [n for n, f in fields.items() if not is_section(f)]
    kwargs = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        f = fields.get(key)
        if f is None:
            errors.append(f"{where(dotted)}{dotted}: unknown key{did_you_mean(str(key), list(fields))}; "
                          f"valid keys: {', '.join(names)}")
            continue
        if is_section(f):
            if value is None:
                value = {}
            if not isinstance(value, dict):
                errors.append(f"{where(dotted)}{dotted}: expected a section (key: value lines), got {value!r}")
                continue
            kwargs[key] = build(f.default_factory, value, f"{dotted}.", where, errors)  # type: ignore[arg-type]
            continue
        ok, coerced = _check_type(value, hints[key])
        if not ok:
            errors.append(f"{where(dotted)}{dotted}: expected {_type_word(hints[key])}, got {value!r}")
            continue
        kwargs[key] = coerced
    return cls(**kwargs)


def describe(cls: type, prefix: str = "") -> list[str]:
    """`key (default): help` lines for every field, sections after plain keys, for --help-recipe."""
    out, nested = [], []
    for f in dataclasses.fields(cls):
        if is_section(f):
            nested.append((f.name, f.default_factory))
            continue
        out.append(f"{prefix}{f.name} ({default_of(f)!r}): {f.metadata.get('help', '')}")
    for name, sub in nested:
        out.extend(describe(sub, f"{prefix}{name}."))
    return out


# --- command-line flags generated from a dataclass: its default and help are written once, there ---

def flag(name: str) -> str:
    """The command-line spelling of a field name: batch_size -> --batch-size."""
    return "--" + name.replace("_", "-")


def add_fields(parser: Any, cls: type, names: list[str] | None = None, **overrides: dict) -> None:
    """Add one flag per named field of `cls` (all non-section fields when `names` is None), with the
    field's help and default text. The flag's own default is None, so a value not given leaves the
    dataclass default in force (`given_fields`). `overrides[name]` adds argparse keywords (choices, ...)."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name in names or [n for n, f in fields.items() if not is_section(f)]:
        f = fields[name]
        kw: dict[str, Any] = {"dest": name, "default": None}
        default = default_of(f)
        help_text = f.metadata.get("help", "")
        annotation = hints[name]
        base = annotation
        if typing.get_origin(annotation) in (typing.Union, types.UnionType):
            base = next(a for a in typing.get_args(annotation) if a is not type(None))
        if base is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(base) is list:
            kw["nargs"] = "+"
        elif base in (int, float):
            kw["type"] = base
        if default not in (None, [], {}, False):
            help_text += f" (default: {default})"
        kw["help"] = help_text
        extra = dict(overrides.get(name, {}))
        names_on_line = extra.pop("flags", [flag(name)])
        kw.update(extra)
        parser.add_argument(*names_on_line, **kw)


def given_fields(args: Any, cls: type) -> dict:
    """The fields of `cls` given on the command line (flags added by `add_fields`), by name."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


def setting(args: Any, cls: type, name: str) -> Any:
    """A field's value: the flag's when given, else the dataclass default."""
    value = getattr(args, name, None)
    if value is not None:
        return value
    return default_of(next(f for f in dataclasses.fields(cls) if f.name == name))

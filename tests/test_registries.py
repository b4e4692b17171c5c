"""Registries are the only lists: no code outside `METHODS` (medtune/train/methods.py), `SCORERS`
(medtune/eval/scorers.py) and `BENCHMARKS` (medtune/data/benchmarks.py) compares a method, scorer or
benchmark name, or spells a list of them; what differs by name is a field of its entry."""

from __future__ import annotations

import ast

from conftest import medtune_sources

REGISTRIES = {"METHODS": "medtune/train/methods.py", "SCORERS": "medtune/eval/scorers.py",
              "BENCHMARKS": "medtune/data/benchmarks.py"}
KINDS = ("method", "scorer", "benchmark")
# item 5 (bench FLOPs and scorer) rewrites these two files; until it lands they keep one comparison each
PENDING = {"medtune/bench/eval.py", "medtune/bench/train.py"}


def registry_names() -> dict[str, set[str]]:
    """Each registry's names."""
    from medtune.data.benchmarks import BENCHMARKS
    from medtune.eval.scorers import SCORERS
    from medtune.train.methods import METHODS

    return {"METHODS": set(METHODS), "SCORERS": set(SCORERS), "BENCHMARKS": set(BENCHMARKS)}


def _strings(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [v for e in node.elts for v in _strings(e)]
    return []


def name_branches(source: str, filename: str, names: dict[str, set[str]]) -> list[str]:
    """Comparisons of a method/scorer/benchmark expression with a registered name, and literal lists of two or
    more names of one registry, each as `file:line: code`."""
    every = set().union(*names.values())
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            named = [v for s in sides for v in _strings(s) if v in every]
            other = " ".join(ast.unparse(s) for s in sides if not _strings(s)).lower()
            if named and any(k in other for k in KINDS):
                out.append(f"{filename}:{node.lineno}: {ast.unparse(node)} compares a name; use a field of its "
                           f"registry entry")
        elif isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            values = [e.value for e in node.elts if isinstance(e, ast.Constant)]
            for registry, known in names.items():
                if len(values) >= 2 and len(values) == len(node.elts) and all(v in known for v in values):
                    out.append(f"{filename}:{node.lineno}: {ast.unparse(node)} lists {registry} names; ask the "
                               f"registry ({REGISTRIES[registry]})")
    return out


def test_no_code_outside_the_registries_branches_on_a_name():
    names = registry_names()
    found = [hit for rel, text in medtune_sources() if rel not in {*REGISTRIES.values(), *PENDING}
             for hit in name_branches(text, rel, names)]
    assert not found, "\n".join(found)


def test_the_check_names_a_planted_branch_and_list():
    source = ('def f(recipe, s):\n    if recipe.method == "full":\n        return 6\n'
              '    return s.scorer in ("letter", "cloze"), ["lora", "dora"]\n')
    got = name_branches(source, "medtune/x.py", registry_names())
    assert [g.split(" ", 1)[0] for g in got] == ["medtune/x.py:2:", "medtune/x.py:4:", "medtune/x.py:4:",
                                                  "medtune/x.py:4:"]
    assert "recipe.method == 'full' compares a name" in got[0]


def test_entries_carry_what_differs_by_method_and_scorer():
    from medtune.eval.scorers import SCORERS, encoder_scorer, training_scorers, user_scorers
    from medtune.train.methods import METHODS, planned_methods

    assert list(planned_methods()) == ["qlora", "lora", "dora", "full"]  # lightest first
    assert METHODS["full"].flops_factor() == 6 and METHODS["lora"].flops_factor(0.5) == 3
    assert METHODS["grpo"].plan_as == "lora" and METHODS["grpo"].run_function() is not None
    assert encoder_scorer().name == "choice" and "choice" not in user_scorers()
    assert training_scorers() == ("letter", "cloze") and SCORERS["generate"].generative

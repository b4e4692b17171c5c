"""The import layers hold: a module imports only from its own layer or below, and no modules import
each other in a circle (imports inside functions count too; imports under `if TYPE_CHECKING:`, which
never run, do not).

    core (errors, io, config, backend, manifest, runfolder) <- data <- models <- eval <- train
        <- tools (bench, serve, hub, space, plan, demo) <- cli
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "medtune"
LAYERS = ["core", "data", "models", "eval", "train", "tools", "cli"]
# the first matching prefix decides a module's layer
LAYER_OF = [
    ("medtune.data", "data"), ("medtune.models", "models"), ("medtune.eval", "eval"),
    ("medtune.train", "train"), ("medtune.export", "train"),
    ("medtune.bench", "tools"), ("medtune.serve", "tools"), ("medtune.hub", "tools"), ("medtune.plan", "tools"),
    ("medtune.demo", "tools"), ("medtune.space", "tools"), ("medtune.plan_text", "tools"),
    ("medtune.cli", "cli"), ("medtune.__main__", "cli"),
    ("medtune", "core"),
]


def layer(module: str) -> str:
    """The layer of a dotted module name."""
    for prefix, name in LAYER_OF:
        if module == prefix or module.startswith(prefix + "."):
            return name
    raise AssertionError(f"{module} is in no layer")


def modules(root: Path, package: str = "medtune") -> dict[str, Path]:
    """Dotted name -> file, for every .py file under root."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).with_suffix("")
        parts = [package, *rel.parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(path: Path, known: dict[str, Path], package: str = "medtune") -> dict[str, int]:
    """The package modules a file imports (module-level and inside functions), with the first line."""
    found: dict[str, int] = {}
    tree = ast.parse(path.read_text("utf-8"))
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If) and
                   ast.unparse(block.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
                   for stmt in block.body for n in ast.walk(stmt)}  # annotations only: never run
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                     for a in node.names]
        for name in names:
            if name == package or name.startswith(package + "."):
                while name not in known and "." in name:
                    name = name.rsplit(".", 1)[0]
                found.setdefault(name, node.lineno)
    return found


def violations(root: Path, package: str = "medtune", layer_of=layer) -> tuple[list[str], list[str]]:
    """(upward imports, circles) in the package under root, each as a readable line."""
    known = modules(root, package)
    graph = {m: imports(p, known, package) for m, p in known.items()}
    upward = []
    for m, deps in graph.items():
        for d, line in deps.items():
            if d != m and LAYERS.index(layer_of(d)) > LAYERS.index(layer_of(m)):
                upward.append(f"{known[m].relative_to(root.parent)}:{line}: {m} ({layer_of(m)}) imports "
                              f"{d} ({layer_of(d)}), a layer above it")
    return upward, _circles(graph)


def _circles(graph: dict[str, dict[str, int]]) -> list[str]:
    """Each import circle once, as 'a -> b -> a' (a package importing its own submodules is no circle)."""
    def edges(m: str) -> list[str]:
        return [d for d in graph.get(m, {}) if d != m and not d.startswith(m + ".")]

    found, state, stack = set(), {}, []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in edges(m):
            if state.get(d) == 1:
                cycle = stack[stack.index(d):]
                k = cycle.index(min(cycle))
                found.add(" -> ".join(cycle[k:] + cycle[:k] + [min(cycle)]))
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    return sorted(found)


def test_medtune_imports_only_look_down_and_never_circle():
    upward, circles = violations(ROOT)
    assert not upward, "upward imports:\n" + "\n".join(upward)
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_every_module_has_a_layer():
    for name in modules(ROOT):
        assert layer(name) in LAYERS


def test_the_checker_finds_a_planted_upward_import_and_a_circle(tmp_path):
    pkg = tmp_path / "medtune"
    (pkg / "data").mkdir(parents=True)
    (pkg / "train").mkdir()
    for f in ("__init__.py", "data/__init__.py", "train/__init__.py", "errors.py"):
        (pkg / f).write_text("")
    (pkg / "data" / "split.py").write_text("def f():\n    from medtune.train.run import g\n")
    (pkg / "train" / "run.py").write_text("from medtune.data import split\n")
    (pkg / "data" / "stats.py").write_text("from medtune.data.split import f\n")
    (pkg / "data" / "split.py").write_text("import medtune.data.stats\ndef f():\n    from medtune.train.run import g\n")
    upward, circles = violations(pkg)
    assert upward == ["medtune/data/split.py:3: medtune.data.split (data) imports medtune.train.run (train), "
                      "a layer above it"]
    assert "medtune.data.split -> medtune.data.stats -> medtune.data.split" in circles
    assert "medtune.data.split -> medtune.train.run -> medtune.data.split" in circles

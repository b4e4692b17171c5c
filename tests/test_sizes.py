"""Modules stay short enough to read and functions fit on a screen: about 300 and 60 lines (the
limits below leave a tenth of slack, so a change that needs a few lines more is not blocked)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "medtune"
MODULE_LINES = 330
FUNCTION_LINES = 66


def test_no_module_or_function_is_too_long():
    long = []
    for path in sorted(ROOT.rglob("*.py")):
        text = path.read_text("utf-8")
        rel = path.relative_to(ROOT.parent)
        if len(text.splitlines()) > MODULE_LINES:
            long.append(f"{rel}: {len(text.splitlines())} lines (module limit {MODULE_LINES})")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > FUNCTION_LINES:
                    long.append(f"{rel}:{node.lineno}: {node.name} is {n} lines (function limit {FUNCTION_LINES})")
    assert not long, "\n".join(long)

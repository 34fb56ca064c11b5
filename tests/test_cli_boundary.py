"""The argparse ``Namespace`` stays in the command line package (kakudai/cli/).

Library code takes keyword arguments or typed options; only ``kakudai.cli`` parses
command lines. The one allowance is a module that is itself a ``python -m`` program
(``python -m kakudai.ship``): its ``main()`` may build its own parser, as long as
argparse is imported there (not at module level) and what it parses is handed on as
keyword arguments. The check reads the source with ``ast``; nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "kakudai"
CLI = ROOT / "cli"


def _runs_as_main(tree: ast.Module) -> bool:
    """Whether the module has an ``if __name__ == "__main__":`` block."""
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Compare):
            names = [n.id for n in ast.walk(node.test) if isinstance(n, ast.Name)]
            consts = [n.value for n in ast.walk(node.test) if isinstance(n, ast.Constant)]
            if "__name__" in names and "__main__" in consts:
                return True
    return False


def _mentions_namespace(node: ast.AST | None) -> bool:
    if node is None:
        return False
    for n in ast.walk(node):
        if isinstance(n, ast.Name) and n.id == "Namespace":
            return True
        if isinstance(n, ast.Attribute) and n.attr == "Namespace":
            return True
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and "Namespace" in n.value:
            return True  # a string annotation
    return False


def namespace_problems(path: Path) -> list[str]:
    """Where the module at ``path`` imports argparse or handles a Namespace outside what is allowed."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    where = path.relative_to(ROOT.parent)
    problems = []
    allowed_imports: set[int] = set()  # argparse imports inside a `python -m` program's main()
    if _runs_as_main(tree):
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name == "main":
                allowed_imports |= {id(n) for n in ast.walk(node)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name == "argparse" for a in node.names) \
                or isinstance(node, ast.ImportFrom) and node.module == "argparse":
            if id(node) not in allowed_imports:
                problems.append(f"{where}:{node.lineno}: imports argparse")
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = node.args
            for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg]:
                if arg is not None and _mentions_namespace(arg.annotation):
                    problems.append(f"{where}:{node.lineno}: {node.name}() takes a Namespace ({arg.arg})")
        if isinstance(node, ast.Call) and _mentions_namespace(node.func):
            problems.append(f"{where}:{node.lineno}: builds a Namespace")
    return problems


def library_modules() -> list[Path]:
    return [p for p in sorted(ROOT.rglob("*.py")) if CLI not in p.parents]


def test_no_library_module_parses_a_command_line_or_takes_a_namespace():
    modules = library_modules()
    assert len(modules) > 30 and not any(p.parent == CLI for p in modules)
    problems = [line for p in modules for line in namespace_problems(p)]
    assert not problems, "argparse outside kakudai/cli/:\n" + "\n".join(problems)


def test_the_check_finds_what_it_forbids(tmp_path):
    cases = {
        "top.py": ("import argparse\n", ["imports argparse"]),
        "param.py": ("from typing import Any\n\ndef run(args: 'argparse.Namespace') -> int:\n    return 0\n",
                     ["run() takes a Namespace (args)"]),
        "build.py": ("def f(d):\n    from argparse import Namespace\n    return Namespace(**d)\n",
                     ["imports argparse", "builds a Namespace"]),
        "lib_main.py": ("def main():\n    import argparse\n    return argparse.ArgumentParser()\n",
                        ["imports argparse"]),  # no `if __name__ == "__main__"`: a library function
        "program.py": ("import sys\n\ndef main():\n    import argparse\n    return 0\n\n"
                       "if __name__ == '__main__':\n    sys.exit(main())\n", []),
    }
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        for name, (source, expected) in cases.items():
            (tmp_path / name).write_text(source)
            found = namespace_problems(tmp_path / name)
            assert len(found) == len(expected) and all(e in f for e, f in zip(expected, found)), (name, found)
    finally:
        ROOT = saved

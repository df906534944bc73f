"""The layout of trainer/: modules that import each other in one direction, none too long,
and a ``--help`` that does not load Keras.

Imports inside functions count: they hide a cycle from Python's import machinery, they do
not remove it (train -> export -> evaluate -> own_teacher -> train was one).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import trainer

TRAINER = Path(trainer.__file__).parent
MAX_LINES = 700
MODULES = sorted(f"trainer.{path.stem}" for path in TRAINER.glob("*.py") if path.stem != "__init__")


def trainer_imports(path: Path) -> set[str]:
    """Every trainer module ``path`` imports, at module level or inside a function."""
    imported = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x, from .x import y
                base = ".".join(["trainer", *filter(None, [node.module])])
            else:
                base = node.module or ""
            imported.add(base)
            imported.update(f"{base}.{alias.name}" for alias in node.names)  # from trainer import x
    return imported & set(MODULES)


def import_graph() -> dict[str, set[str]]:
    return {name: trainer_imports(TRAINER / f"{name.split('.')[1]}.py") for name in MODULES}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path that ends where it starts, or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        for target in sorted(graph.get(node, ())):
            cycle = visit(target, [*path, node])
            if cycle:
                return cycle
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start, [])
        if cycle:
            return cycle
    return None


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_holds_function_level_imports_too():
    graph = import_graph()
    assert "trainer.fit" in graph["trainer.run"]  # module level
    assert "trainer.tta" in graph["trainer.evaluate"]  # inside evaluate_model_dir
    assert "trainer.run" in graph["trainer.cli"]  # inside the train command


def test_no_import_cycle_inside_trainer():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_trainer_module_is_over_700_lines():
    lengths = {path.name: len(path.read_text().splitlines()) for path in TRAINER.glob("*.py")}
    assert {name: n for name, n in lengths.items() if n > MAX_LINES} == {}


def test_help_does_not_import_keras_or_tensorflow():
    """``trapcount-train --help`` and every command's ``--help``, in an interpreter where
    importing Keras or TensorFlow fails."""
    script = textwrap.dedent(
        """
        import sys
        from click.testing import CliRunner

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("keras", "tensorflow"):
                    raise ImportError(f"{name} imported for --help")

        sys.meta_path.insert(0, Block())
        from trainer.cli import main

        for args in [["--help"], *([name, "--help"] for name in main.commands)]:
            result = CliRunner().invoke(main, args)
            assert result.exit_code == 0, (args, result.output, result.exception)
        print(len(main.commands), "commands")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "4 commands" in result.stdout

"""The layout of trainer/: modules that import each other in one direction, none too long,
and a ``--help`` that does not load Keras.

Imports inside functions count: they hide a cycle from Python's import machinery, they do
not remove it (train -> export -> evaluate -> own_teacher -> train was one).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import trainer
from tests.helpers.imports import find_cycle
from tests.helpers.imports import import_graph as trainer_graph

TRAINER = Path(trainer.__file__).parent
MAX_LINES = 700


def import_graph() -> dict[str, set[str]]:
    return trainer_graph(TRAINER, "trainer")


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
    assert "5 commands" in result.stdout

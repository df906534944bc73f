"""The edge agent must import and run on a Pi with no TensorFlow or Keras installed.

Every ``edge_agent`` module is imported in a fresh interpreter where a meta-path hook makes
``import tensorflow`` and ``import keras`` fail, exactly as on a trap without them.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import textwrap

import edge_agent

BLOCKED = ("tensorflow", "keras", "tf_keras", "jax", "torch")


def edge_modules() -> list[str]:
    return sorted(
        info.name
        for info in pkgutil.walk_packages(edge_agent.__path__, prefix="edge_agent.")
        # __main__ modules run their command when imported; what they import is checked.
        if ".migrations" not in info.name and not info.name.endswith(".__main__")
    )


def test_there_are_edge_modules_to_check() -> None:
    modules = edge_modules()
    assert "edge_agent.vision.classifier" in modules
    assert "edge_agent.manifest" in modules


def test_edge_agent_imports_without_tensorflow_or_keras() -> None:
    script = textwrap.dedent(
        f"""
        import importlib, sys
        BLOCKED = {BLOCKED!r}

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"{{name}} is blocked: the edge agent must not need it")
                return None

        sys.meta_path.insert(0, Block())
        for name in {edge_modules()!r}:
            importlib.import_module(name)
        leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        assert not leaked, leaked
        print("imported", len({edge_modules()!r}), "modules")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "imported" in result.stdout

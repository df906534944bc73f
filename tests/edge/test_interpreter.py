"""Choosing the TFLite backend (``edge_agent.vision.interpreter.load_interpreter_class``)."""

from __future__ import annotations

import pytest

from edge_agent.manifest import ModelContractError
from edge_agent.vision import interpreter


def test_a_backend_whose_module_has_no_interpreter_is_passed_over_with_one_line(monkeypatch):
    """As TensorFlow 2.21's ``tf.lite``, which no longer has ``Interpreter``: the one-line
    error of a machine with no backend, not an AttributeError."""
    monkeypatch.setitem(interpreter._BACKENDS, "hollow", ("json", "Interpreter"))
    with pytest.raises(ModelContractError, match="no TFLite interpreter available"):
        interpreter.load_interpreter_class("hollow")


def test_an_unknown_backend_is_named():
    with pytest.raises(ModelContractError, match="unknown TFLite backend 'tpu'"):
        interpreter.load_interpreter_class("tpu")

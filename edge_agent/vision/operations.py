"""Multiply-adds of a TFLite network, counted from the operators of the file itself.

What a crop costs on a Pi is estimated from its multiply-adds (``benchmarks/bench_budget.py``,
``models/default/README.md``). Counted here on the ``.tflite`` a trap runs, the count
includes the test-time views baked into the graph (a mirrored copy of the network, or six
views stacked as one batch) and holds for a grey companion as for the colour network,
where a count on the Keras model needs to be told how many views the export added.

Counted as ``trainer.models.count_macs`` counts a Keras model: convolutions, depthwise
convolutions and fully connected layers; pooling, activations and requantisation are left
out.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from edge_agent.manifest import ModelContractError
from edge_agent.vision.interpreter import load_interpreter_class


def multiply_adds(path: Path | str) -> int:
    """Multiply-adds of one invocation of the network in ``path`` at its input shape (a
    model of this project: one crop)."""
    interpreter_class, backend = load_interpreter_class()
    # Without the default delegate (XNNPACK): the tensors it takes over keep the shapes
    # written in the file, batch 1, where six views stacked as one batch run at batch 6;
    # the plain operators have their shapes worked out by ``allocate_tensors``.
    resolvers = getattr(sys.modules[interpreter_class.__module__], "OpResolverType", None)
    if resolvers is None:
        raise ModelContractError(f"cannot count the operations of {path} with {backend}")
    interpreter = interpreter_class(
        model_path=str(path),
        experimental_op_resolver_type=resolvers.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interpreter.allocate_tensors()
    # The operator list is not public API of any TFLite backend, but every one of them has
    # had it for years (tf.lite, tflite-runtime 2.14, ai-edge-litert).
    details = getattr(interpreter, "_get_ops_details", None)
    if details is None:
        raise ModelContractError(f"cannot count the operations of {path}: {backend} lists none")
    shapes = {t["index"]: [int(v) for v in t["shape"]] for t in interpreter.get_tensor_details()}
    total = 0
    for op in details():
        name = op["op_name"]
        if name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            continue
        weights = shapes[op["inputs"][1]]
        out = shapes[op["outputs"][0]]
        if name == "DEPTHWISE_CONV_2D":
            # weights [1, kh, kw, channels]: each output value is one kh x kw window.
            total += int(np.prod(out)) * weights[1] * weights[2]
        else:
            # CONV_2D weights [out, kh, kw, in], FULLY_CONNECTED [out, in]: each output row
            # (a pixel, a crop of the batch) multiplies all of them once.
            total += int(np.prod(out[:-1])) * int(np.prod(weights))
    return total

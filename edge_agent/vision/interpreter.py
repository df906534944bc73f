"""One TFLite network: the interpreter loaded from a file, checked against the model's
manifest, and run on batches of crops (quantized in, dequantized out).

The interpreter comes from ``ai_edge_litert`` (LiteRT, the successor of tflite-runtime),
else ``tflite_runtime`` (its last release, 2.14, still common on older Pi images), else
``tensorflow.lite`` (a trainer machine with an older TensorFlow: 2.21's ``tf.lite`` has no
``Interpreter``, and the trainer extra installs LiteRT). A model is one network, or two (a
colour one and its grey companion, ``edge_agent.vision.classifier``); both are loaded and
checked alike.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.manifest import Manifest, ModelContractError, verify_sha256

# (module, attribute path) in order of preference.
_BACKENDS: dict[str, tuple[str, str]] = {
    "ai_edge_litert": ("ai_edge_litert.interpreter", "Interpreter"),
    "tflite_runtime": ("tflite_runtime.interpreter", "Interpreter"),
    "tensorflow": ("tensorflow.lite", "Interpreter"),
}


def load_interpreter_class(preferred: str | None = None) -> tuple[Any, str]:
    """Return (Interpreter class, backend name).

    ``preferred`` (or the TRAPCOUNT_TFLITE_BACKEND environment variable) forces one backend,
    which benchmarks use to compare them.
    """
    preferred = preferred or os.environ.get("TRAPCOUNT_TFLITE_BACKEND") or None
    names = [preferred] if preferred else list(_BACKENDS)
    errors = []
    for name in names:
        if name not in _BACKENDS:
            raise ModelContractError(
                f"unknown TFLite backend {name!r}; choose one of {', '.join(_BACKENDS)}"
            )
        module_name, attr = _BACKENDS[name]
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
            continue
        interpreter_class = getattr(module, attr, None)
        if interpreter_class is None:
            # TensorFlow 2.21 still has tf.lite but no longer its Interpreter (LiteRT took
            # it over): passed over like a backend that is not installed.
            errors.append(f"{name}: {module_name} has no {attr}")
            continue
        return interpreter_class, name
    raise ModelContractError(
        "no TFLite interpreter available; install trapcount[edge] (ai-edge-litert) or "
        "trapcount[edge-legacy] (tflite-runtime)"
    )


class Network:
    """One .tflite file, refused (:class:`ModelContractError`, one line) unless its sha256
    is ``sha256`` and its tensors are what ``manifest`` promises."""

    def __init__(
        self,
        path: Path,
        sha256: str,
        manifest: Manifest,
        *,
        num_threads: int,
        max_batch: int,
        backend: str | None = None,
    ) -> None:
        self.path = Path(path)
        verify_sha256(self.path, sha256)
        interpreter_class, self.backend = load_interpreter_class(backend)
        try:
            self._interpreter = interpreter_class(
                model_path=str(self.path), num_threads=num_threads
            )
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelContractError(f"cannot load {self.path}: {exc}") from None
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._check_against(manifest)
        self.max_batch = max_batch
        signature = self._input.get("shape_signature", self._input["shape"])
        self._dynamic_batch = int(signature[0]) == -1
        self._batch = int(self._input["shape"][0])

    def _check_against(self, m: Manifest) -> None:
        in_shape = [int(v) for v in self._input["shape"]]
        out_shape = [int(v) for v in self._output["shape"]]
        if len(in_shape) != 4 or in_shape[1:] != [int(v) for v in m.input.shape[1:]]:
            raise ModelContractError(
                f"{self.path}: input shape {in_shape[1:]} != manifest {list(m.input.shape[1:])}"
            )
        if in_shape[3] != 3:
            raise ModelContractError(f"{self.path}: input must have 3 channels (RGB)")
        if np.dtype(self._input["dtype"]).name != m.input.dtype:
            raise ModelContractError(
                f"{self.path}: input dtype {np.dtype(self._input['dtype']).name} != "
                f"manifest {m.input.dtype}"
            )
        if out_shape[-1] != len(m.labels):
            raise ModelContractError(
                f"{self.path}: {out_shape[-1]} outputs but the manifest lists "
                f"{len(m.labels)} labels"
            )

    def _quantize(self, images: np.ndarray) -> np.ndarray:
        dtype = np.dtype(self._input["dtype"])
        if dtype.kind == "f":
            return images.astype(dtype)
        scale, zero_point = self._input["quantization"]
        if scale == 0:
            return images.astype(dtype)
        info = np.iinfo(dtype)
        q = np.round(images.astype(np.float32) / scale + zero_point)
        return np.clip(q, info.min, info.max).astype(dtype)

    def _dequantize(self, raw: np.ndarray) -> np.ndarray:
        if np.dtype(self._output["dtype"]).kind == "f":
            return raw.astype(np.float32)
        scale, zero_point = self._output["quantization"]
        return (raw.astype(np.float32) - zero_point) * scale

    def _run(self, batch: np.ndarray) -> np.ndarray:
        n = batch.shape[0]
        if self._dynamic_batch and n != self._batch:
            self._interpreter.resize_tensor_input(self._input["index"], [n, *batch.shape[1:]])
            self._interpreter.allocate_tensors()
            self._batch = n
        self._interpreter.set_tensor(self._input["index"], batch)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output["index"]).copy()

    def predict(self, images: np.ndarray) -> np.ndarray:
        """RGB uint8 (N, H, W, 3), N >= 1, checked by the caller -> probabilities (N, labels).
        Not thread-safe: the classifier holds its lock around it."""
        chunk = self.max_batch if self._dynamic_batch else self._batch
        outputs = []
        for start in range(0, images.shape[0], chunk):
            part = self._quantize(images[start : start + chunk])
            outputs.append(self._dequantize(self._run(part)))
        return np.concatenate(outputs, axis=0).reshape(images.shape[0], -1)

    def close(self) -> None:
        self._interpreter = None

"""The model contract shared by the trainer and the edge agent.

A model directory holds ``model.tflite`` and ``model.json``. The manifest says what the
model expects (raw RGB pixels 0-255 at a fixed size; normalization lives inside the model),
what it outputs (labels in output order), how it was quantized and how well it did on the
held-out split. The agent refuses a model whose manifest does not match the file.

Standard library only: the trainer imports this module too, and the Pi must not need
anything heavier to read a manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge_agent.labels import RULE, is_valid_label, shown

MANIFEST_FORMAT = 1
MODEL_FILENAME = "model.tflite"
MANIFEST_FILENAME = "model.json"


class ModelContractError(ValueError):
    """A model file and its manifest disagree, or the manifest is malformed."""


@dataclass(frozen=True)
class TensorSpec:
    """Shape (batch first; -1 for a dynamic batch), dtype and affine quantization."""

    shape: list[int]
    dtype: str
    scale: float = 0.0
    zero_point: int = 0


@dataclass
class Manifest:
    labels: list[str]
    input: TensorSpec
    output: TensorSpec
    sha256: str
    arch: str = "unknown"
    color: str = "RGB"
    pixel_range: list[int] = field(default_factory=lambda: [0, 255])
    accuracy: dict[str, Any] = field(default_factory=dict)
    per_class_recall: dict[str, float] = field(default_factory=dict)
    # How the confidences were calibrated (trainer.calibrate): method, temperature, and the
    # expected calibration error before and after on the validation split.
    confidence: dict[str, Any] = field(default_factory=dict)
    # Test-time augmentation inside the .tflite ("flip": crop and mirror, logits averaged;
    # "flip-shift": those and the pair shifted a pixel each way, 6 views, trainer/tta.py):
    # information only, the agent calls the model the same way; a crop costs that many passes.
    tta: str = "none"
    training: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    trapcount_version: str = ""
    format: int = MANIFEST_FORMAT

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of the model input."""
        return int(self.input.shape[1]), int(self.input.shape[2])

    @property
    def version(self) -> str:
        """A short, stable identifier of the model: the first 12 hex digits of its sha256."""
        return self.sha256[:12]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        try:
            fmt = int(data.get("format", MANIFEST_FORMAT))
            if fmt > MANIFEST_FORMAT:
                raise ModelContractError(
                    f"manifest format {fmt} is newer than this agent understands "
                    f"({MANIFEST_FORMAT}); upgrade trapcount"
                )
            labels = checked_labels(data["labels"])
            fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
            fields["labels"] = labels
            fields["input"] = TensorSpec(**data["input"])
            fields["output"] = TensorSpec(**data["output"])
            return cls(**fields)
        except KeyError as exc:
            raise ModelContractError(f"manifest is missing key {exc.args[0]!r}") from None
        except TypeError as exc:
            raise ModelContractError(f"manifest is malformed: {exc}") from None


def checked_labels(raw: Any) -> list[str]:
    """The manifest's labels, refused (one line naming the label) when one is empty, given
    twice or breaks the label rule: labels become folder names and table keys, and the
    trainer's data loading refuses such class names, so only a hand-edited or foreign
    manifest has them."""
    if not isinstance(raw, list):
        raise ModelContractError("manifest labels must be a list")
    labels = [str(label) for label in raw]
    seen: set[str] = set()
    for position, label in enumerate(labels):
        if not label.strip():
            raise ModelContractError(f"manifest label {position} (of {len(labels)}) is empty")
        if label in seen:
            raise ModelContractError(f"manifest lists label {shown(label)} twice")
        if not is_valid_label(label):
            raise ModelContractError(f"manifest label {shown(label)} breaks the rule: {RULE}")
        seen.add(label)
    return labels


def sha256_file(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_paths(model: Path | str) -> tuple[Path, Path]:
    """Accept a model directory or the .tflite inside it; return (tflite, manifest) paths."""
    model = Path(model)
    if model.is_dir():
        return model / MODEL_FILENAME, model / MANIFEST_FILENAME
    return model, model.with_suffix(".json")


def read_manifest(model: Path | str) -> Manifest:
    """Read and parse the manifest; does not check it against the model file."""
    tflite_path, manifest_path = model_paths(model)
    if not tflite_path.exists():
        raise ModelContractError(f"model file not found: {tflite_path}")
    if not manifest_path.exists():
        raise ModelContractError(f"model manifest not found: {manifest_path}")
    try:
        data = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelContractError(f"cannot read manifest {manifest_path}: {exc}") from None
    if not isinstance(data, dict):
        raise ModelContractError(f"manifest {manifest_path} is not a JSON object")
    return Manifest.from_dict(data)


def verify_hash(manifest: Manifest, tflite_path: Path | str) -> None:
    actual = sha256_file(tflite_path)
    if actual != manifest.sha256:
        raise ModelContractError(
            f"{tflite_path} does not match its manifest: sha256 {actual[:12]} != "
            f"{manifest.sha256[:12]} (file changed or wrong manifest)"
        )


def write_manifest(manifest: Manifest, directory: Path | str) -> Path:
    """Write model.json atomically (temp file + rename) so a reader never sees half a file."""
    directory = Path(directory)
    path = directory / MANIFEST_FILENAME
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest.to_dict(), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")

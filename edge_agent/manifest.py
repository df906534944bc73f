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
# The optional companion network for grey crops (infrared night frames), beside the model.
GREY_FILENAME = "model-grey.tflite"
# Mean |R-G|, |G-B|, |B-R| of a crop at the model's input (grey levels) below which the
# crop goes to the grey companion: edge_agent.vision.illumination.IR_SPREAD, the rule that
# calls a whole frame infrared (restated here: this module must stay standard library only).
GREY_MAX_SPREAD = 3.0


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
    # A second network of the same labels and input for grey crops (R = G = B: infrared
    # night frames), which the classifier runs instead of this one on them
    # (:class:`GreyCompanion`; empty: this network classifies every crop). A colour network
    # spends part of its capacity on colour that an infrared frame never has; a network
    # trained on grey alone, taught by the colour one, names grey crops better
    # (models/default/README.md). An older agent ignores the key and runs this network on
    # every crop.
    grey: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    trapcount_version: str = ""
    format: int = MANIFEST_FORMAT

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of the model input."""
        return int(self.input.shape[1]), int(self.input.shape[2])

    @property
    def version(self) -> str:
        """A short, stable identifier of the model: the first 12 hex digits of its
        :attr:`identity` (of the .tflite's sha256 for a model of one network)."""
        return self.identity[:12]

    @property
    def identity(self) -> str:
        """What the trap records as the model (the database's ``model_versions.sha256``):
        the .tflite's sha256, or, with a grey companion, the sha256 of both files' hashes,
        so that replacing either network is a new model in every report."""
        companion = self.grey_companion
        if companion is None:
            return self.sha256
        return hashlib.sha256(f"{self.sha256}+{companion.sha256}".encode()).hexdigest()

    @property
    def grey_companion(self) -> GreyCompanion | None:
        """The companion network for grey crops, when the model has one."""
        return GreyCompanion.from_dict(self.grey) if self.grey else None

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
            manifest = cls(**fields)
            manifest.grey_companion  # noqa: B018 - refuse a malformed 'grey' section now
            return manifest
        except KeyError as exc:
            raise ModelContractError(f"manifest is missing key {exc.args[0]!r}") from None
        except TypeError as exc:
            raise ModelContractError(f"manifest is malformed: {exc}") from None


@dataclass(frozen=True)
class GreyCompanion:
    """The manifest's ``grey`` section: the companion network's file (a name in the model's
    folder), its sha256, the crop spread below which it is used, and its own records."""

    file: str
    sha256: str
    max_spread: float = GREY_MAX_SPREAD
    arch: str = "unknown"
    # The companion's own test-time augmentation (as Manifest.tta: information only; a
    # grey crop costs that many passes of the companion).
    tta: str = "none"
    accuracy: dict[str, Any] = field(default_factory=dict)
    confidence: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any) -> GreyCompanion:
        if not isinstance(data, dict):
            raise ModelContractError("manifest key 'grey' must be an object")
        for key in ("file", "sha256"):
            if not isinstance(data.get(key), str) or not data[key]:
                raise ModelContractError(f"manifest key 'grey.{key}' is missing or not text")
        name = data["file"]
        # A name beside model.json, never a path: a manifest must not point elsewhere.
        if Path(name).name != name or name in (".", "..", MODEL_FILENAME, MANIFEST_FILENAME):
            raise ModelContractError(f"manifest key 'grey.file' must be a file name, not {name!r}")
        spread = data.get("max_spread", GREY_MAX_SPREAD)
        if not isinstance(spread, int | float) or not 0 < spread <= 255:
            raise ModelContractError("manifest key 'grey.max_spread' must be in (0, 255]")
        return cls(
            file=name,
            sha256=data["sha256"],
            max_spread=float(spread),
            arch=str(data.get("arch", "unknown")),
            tta=str(data.get("tta", "none")),
            accuracy=dict(data.get("accuracy") or {}),
            confidence=dict(data.get("confidence") or {}),
            training=dict(data.get("training") or {}),
        )

    def path(self, model_dir: Path) -> Path:
        return Path(model_dir) / self.file


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


def model_files(model: Path | str) -> list[Path]:
    """Every file a model is made of: the .tflite, the manifest and, when the manifest
    names one, the grey companion (what the service's reload check watches). A
    manifest that cannot be read yet (a copy in progress) names no companion."""
    tflite, manifest_path = model_paths(model)
    files = [tflite, manifest_path]
    try:
        companion = read_manifest(model).grey_companion
    except ModelContractError:
        return files
    if companion is not None:
        files.append(companion.path(manifest_path.parent))
    return files


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
    verify_sha256(tflite_path, manifest.sha256)


def verify_sha256(path: Path | str, expected: str) -> None:
    """Refuse a file whose sha256 is not the one its manifest records."""
    actual = sha256_file(path)
    if actual != expected:
        raise ModelContractError(
            f"{path} does not match its manifest: sha256 {actual[:12]} != "
            f"{expected[:12]} (file changed or wrong manifest)"
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

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_agent.manifest import (
    MANIFEST_FILENAME,
    MODEL_FILENAME,
    Manifest,
    ModelContractError,
    TensorSpec,
    read_manifest,
    sha256_file,
    verify_hash,
    write_manifest,
)


def make_model_dir(tmp_path: Path, payload: bytes = b"not really a model") -> Path:
    (tmp_path / MODEL_FILENAME).write_bytes(payload)
    manifest = Manifest(
        labels=["cat", "deer"],
        input=TensorSpec([-1, 32, 32, 3], "uint8", 1.0, 0),
        output=TensorSpec([-1, 2], "uint8", 1 / 256, 0),
        sha256=sha256_file(tmp_path / MODEL_FILENAME),
        arch="tiny",
    )
    write_manifest(manifest, tmp_path)
    return tmp_path


def test_round_trip(tmp_path: Path) -> None:
    model_dir = make_model_dir(tmp_path)
    manifest = read_manifest(model_dir)
    assert manifest.labels == ["cat", "deer"]
    assert manifest.input_size == (32, 32)
    assert manifest.version == manifest.sha256[:12]
    verify_hash(manifest, model_dir / MODEL_FILENAME)
    # The .tflite path works as well as the folder.
    assert read_manifest(model_dir / MODEL_FILENAME).sha256 == manifest.sha256


def test_changed_file_is_refused(tmp_path: Path) -> None:
    model_dir = make_model_dir(tmp_path)
    (model_dir / MODEL_FILENAME).write_bytes(b"tampered")
    with pytest.raises(ModelContractError, match="does not match its manifest"):
        verify_hash(read_manifest(model_dir), model_dir / MODEL_FILENAME)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "cannot read manifest"),
        ("[1, 2]", "not a JSON object"),
        ('{"labels": ["a"]}', "missing key 'input'"),
        (
            '{"labels": ["a"], "input": {"shape": [1]}, "output": {"shape": [1], "dtype": "u"}}',
            "malformed",
        ),
        (
            json.dumps({"format": 99, "labels": [], "input": {}, "output": {}, "sha256": ""}),
            "newer than this agent",
        ),
    ],
)
def test_malformed_manifest_gives_one_line_error(
    tmp_path: Path, content: str, message: str
) -> None:
    make_model_dir(tmp_path)
    (tmp_path / MANIFEST_FILENAME).write_text(content)
    with pytest.raises(ModelContractError, match=message) as info:
        read_manifest(tmp_path)
    assert "\n" not in str(info.value)


def test_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ModelContractError, match="model file not found"):
        read_manifest(tmp_path)
    (tmp_path / MODEL_FILENAME).write_bytes(b"x")
    with pytest.raises(ModelContractError, match="manifest not found"):
        read_manifest(tmp_path)

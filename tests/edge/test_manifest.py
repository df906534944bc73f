from __future__ import annotations

import json
import re
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
from tests.helpers.media import REPO


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


def write_labels(tmp_path: Path, labels: list) -> Path:
    model_dir = make_model_dir(tmp_path)
    data = json.loads((model_dir / MANIFEST_FILENAME).read_text())
    data["labels"] = labels
    (model_dir / MANIFEST_FILENAME).write_text(json.dumps(data))
    return model_dir


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (["deer", "fox", "deer"], "lists label 'deer' twice"),
        (["deer", ""], "label 1 (of 2) is empty"),
        (["deer", "  "], "label 1 (of 2) is empty"),
        (["deer", "Red Fox"], "label 'Red Fox' breaks the rule"),
        (["../../etc", "deer"], "label '../../etc' breaks the rule"),
        (["a/b", "deer"], "label 'a/b' breaks the rule"),
        (["deer\n", "fox"], "label 'deer\\n' breaks the rule"),
        (["x" * 65, "fox"], "label 'xxxx"),
        ("deer", "must be a list"),
    ],
    ids=["duplicate", "empty", "blank", "space", "dotdot", "slash", "newline", "long", "string"],
)
def test_labels_that_break_the_label_rule_are_refused_at_load(
    tmp_path: Path, labels: list, message: str
) -> None:
    model_dir = write_labels(tmp_path, labels)
    with pytest.raises(ModelContractError, match=re.escape(message)) as info:
        read_manifest(model_dir)
    assert "\n" not in str(info.value) and len(str(info.value)) < 200


def test_the_shipped_cifar10_and_the_test_models_labels_keep_the_rule(tmp_path: Path) -> None:
    from tests.helpers.trap_databases import LABELS
    from tests.trainer.conftest import CLASSES

    # CIFAR-10's ten and what the real trap frames added: empty views and other species.
    assert read_manifest(REPO / "models" / "default").labels == [
        "airplane", "automobile", "bird", "cat", "deer", "dog", "empty", "frog", "horse",
        "other", "ship", "truck",
    ]  # fmt: skip
    sprites = [
        "boar",
        "deer",
        "fox",
        "hare",
        "cat",
        "dog",
    ]  # edge_agent.demo.scenes, the tiny model
    for labels in (LABELS, list(CLASSES), [*CLASSES, "badger"], sprites, ["red_fox", "roe-deer"]):
        assert read_manifest(write_labels(tmp_path, labels)).labels == labels

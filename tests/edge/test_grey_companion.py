"""A model with a grey companion: the network for grey crops (infrared night frames) beside
the colour one, each crop sent to one of them. Real tiny int8 models (two seeds of the test
recipe stand in for the colour and the grey network), real files, the trap's classifier."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_agent.demo.sprites import textured_background
from edge_agent.manifest import (
    GREY_FILENAME,
    MANIFEST_FILENAME,
    ModelContractError,
    read_manifest,
)
from edge_agent.service.model import model_signature
from edge_agent.store.database import Store
from edge_agent.vision.classifier import Classifier, crop_spread
from tests.helpers.media import copy_model, tiny_model_dir
from trainer.pair import pair_models


@pytest.fixture(scope="module")
def colour_model(request) -> Path:
    return tiny_model_dir(request.config, seed=0)


@pytest.fixture(scope="module")
def grey_model(request) -> Path:
    return tiny_model_dir(request.config, seed=1)


@pytest.fixture
def paired(tmp_path: Path, colour_model: Path, grey_model: Path) -> Path:
    pair_models(colour_model, grey_model, tmp_path / "paired")
    return tmp_path / "paired"


def crops(seed: int, n: int, *, grey: bool) -> np.ndarray:
    """32 x 32 RGB crops: the scenes' forest background in colour, or dark textured grey
    (R = G = B), as a night frame's crop is. The two tiny test networks are both sure of
    bright grey textures and differ on dark ones, where the routing shows."""
    rng = np.random.default_rng(seed)
    if not grey:
        images = np.stack([textured_background(32, 32, rng)[..., ::-1] for _ in range(n)])
        return np.ascontiguousarray(images)
    levels = rng.integers(8, 56, n)[:, None, None]
    texture = rng.integers(-6, 7, (n, 8, 8)).repeat(4, axis=1).repeat(4, axis=2)
    images = np.clip(levels + texture, 0, 255).astype(np.uint8)
    return np.repeat(images[..., None], 3, axis=-1)


def test_the_manifest_default_spread_is_the_rule_that_calls_a_frame_infrared() -> None:
    """edge_agent.manifest restates IR_SPREAD (it must stay standard library only)."""
    from edge_agent.manifest import GREY_MAX_SPREAD
    from edge_agent.vision.illumination import IR_SPREAD

    assert GREY_MAX_SPREAD == IR_SPREAD


def test_crop_spread_is_zero_for_grey_crops_and_large_for_colour() -> None:
    assert crop_spread(crops(0, 5, grey=True)).tolist() == [0.0] * 5
    assert crop_spread(crops(0, 5, grey=False)).min() > 10


def test_each_crop_goes_to_the_network_of_its_look(paired, colour_model, grey_model) -> None:
    grey, colour = crops(1, 6, grey=True), crops(2, 6, grey=False)
    mixed = np.concatenate([grey[:3], colour[:3], grey[3:], colour[3:]])
    with (
        Classifier(paired) as pair,
        Classifier(colour_model) as colour_only,
        Classifier(grey_model) as grey_only,
    ):
        assert pair.has_grey_companion and not colour_only.has_grey_companion
        expected = np.concatenate(
            [
                grey_only.predict_proba(grey[:3]),
                colour_only.predict_proba(colour[:3]),
                grey_only.predict_proba(grey[3:]),
                colour_only.predict_proba(colour[3:]),
            ]
        )
        np.testing.assert_array_equal(pair.predict_proba(mixed), expected)
        # All of one look in a batch: one network, the same answers.
        np.testing.assert_array_equal(pair.predict_proba(grey), grey_only.predict_proba(grey))
        np.testing.assert_array_equal(pair.predict_proba(colour), colour_only.predict_proba(colour))
        # The two networks differ, so the routing above is seen, not assumed.
        assert not np.array_equal(colour_only.predict_proba(grey), grey_only.predict_proba(grey))


def test_a_frame_near_grey_goes_to_the_companion(paired, grey_model) -> None:
    """JPEG and the IR lamp leave a grey frame's channels a level or two apart."""
    grey = crops(3, 4, grey=True).astype(np.int16)
    grey[..., 0] += 2  # R two levels up: spread 4/3 of a level
    near = np.clip(grey, 0, 255).astype(np.uint8)
    with Classifier(paired) as pair, Classifier(grey_model) as grey_only:
        assert pair.grey_crops(near).all()
        np.testing.assert_array_equal(pair.predict_proba(near), grey_only.predict_proba(near))


def test_the_pair_is_a_model_of_its_own(paired, colour_model, grey_model, tmp_path) -> None:
    colour, pair = read_manifest(colour_model), read_manifest(paired)
    companion = pair.grey_companion
    assert companion is not None and companion.sha256 == read_manifest(grey_model).sha256
    assert pair.sha256 == colour.sha256  # model.tflite itself is unchanged
    assert pair.version != colour.version  # but the model is another
    with Classifier(paired) as classifier:
        assert classifier.sha256 == pair.identity
    # The database knows it apart from the colour network alone.
    with Store.open(tmp_path / "trap.sqlite") as store:
        assert store.register_model(pair) != store.register_model(colour)
        assert store.model_version_id(pair.identity) == store.register_model(pair)


def test_replacing_the_companion_is_seen_by_the_reload_watch(paired, colour_model) -> None:
    before = model_signature(paired)
    shutil.copy2(colour_model / "model.tflite", paired / GREY_FILENAME)
    assert model_signature(paired) != before


def test_a_wrong_or_missing_companion_refuses_the_model(paired, colour_model) -> None:
    shutil.copy2(colour_model / "model.tflite", paired / GREY_FILENAME)  # another network
    with pytest.raises(ModelContractError, match=r"model-grey\.tflite does not match"):
        Classifier(paired)
    (paired / GREY_FILENAME).unlink()
    with pytest.raises((ModelContractError, OSError), match=r"model-grey\.tflite"):
        Classifier(paired)


@pytest.mark.parametrize(
    ("grey", "message"),
    [
        ({"file": "../elsewhere.tflite", "sha256": "ab"}, "'grey.file' must be a file name"),
        ({"file": GREY_FILENAME}, "'grey.sha256' is missing"),
        ({"file": GREY_FILENAME, "sha256": "ab", "max_spread": -1}, "'grey.max_spread'"),
        ("model-grey.tflite", "'grey' must be an object"),
    ],
)
def test_a_malformed_grey_section_is_named(paired, grey, message) -> None:
    path = paired / MANIFEST_FILENAME
    data = json.loads(path.read_text())
    data["grey"] = grey
    path.write_text(json.dumps(data))
    with pytest.raises(ModelContractError, match=message):
        read_manifest(paired)


def test_pairing_refuses_networks_that_do_not_match(tmp_path, colour_model, grey_model) -> None:
    other = copy_model(grey_model, tmp_path / "other")
    data = json.loads((other / MANIFEST_FILENAME).read_text())
    data["labels"] = list(reversed(data["labels"]))
    (other / MANIFEST_FILENAME).write_text(json.dumps(data))
    with pytest.raises(ModelContractError, match=r"labels .* are not the colour model's"):
        pair_models(colour_model, other, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    (tmp_path / "broken").mkdir()
    with pytest.raises(ModelContractError, match="model file not found"):
        pair_models(colour_model, tmp_path / "broken", tmp_path / "out")


def test_pairing_in_place_and_again_replaces_the_companion(tmp_path, colour_model, grey_model):
    model = copy_model(colour_model, tmp_path / "model")
    pair_models(model, grey_model, model)
    first = read_manifest(model).grey_companion
    pair_models(model, colour_model, model)  # any network of the same contract will do
    second = read_manifest(model).grey_companion
    assert first is not None and second is not None
    assert second.sha256 == read_manifest(colour_model).sha256 != first.sha256
    with Classifier(model) as classifier:
        assert classifier.has_grey_companion


def test_the_pair_records_the_companions_views(tmp_path, colour_model, grey_model) -> None:
    # A companion exported with test-time augmentation costs that many passes a grey crop;
    # the pair's manifest says so, and a pair made before the key existed reads as one view.
    flipped = copy_model(grey_model, tmp_path / "flipped")
    data = json.loads((flipped / MANIFEST_FILENAME).read_text())
    data["tta"] = "flip"
    (flipped / MANIFEST_FILENAME).write_text(json.dumps(data))
    companion = pair_models(colour_model, flipped, tmp_path / "pair").grey_companion
    assert companion is not None and companion.tta == "flip"
    assert read_manifest(tmp_path / "pair").grey_companion.tta == "flip"
    path = tmp_path / "pair" / MANIFEST_FILENAME
    data = json.loads(path.read_text())
    del data["grey"]["tta"]
    path.write_text(json.dumps(data))
    assert read_manifest(tmp_path / "pair").grey_companion.tta == "none"


def test_the_pair_records_how_the_companion_was_augmented(tmp_path, colour_model, grey_model):
    # Two companions of one recipe can differ only in their shifts and cutout (the one
    # shipped since 2026-12-06 trained without cutout): the pair's record says which.
    own = json.loads((grey_model / MANIFEST_FILENAME).read_text())["training"]
    pair_models(colour_model, grey_model, tmp_path / "pair")
    grey = json.loads((tmp_path / "pair" / MANIFEST_FILENAME).read_text())["grey"]["training"]
    assert "cutout" in own and "translate" in own
    assert (grey["cutout"], grey["translate"]) == (own["cutout"], own["translate"])

"""The model factory: the seed recipe layer for layer, BN-foldable resnet, head swap."""

from __future__ import annotations

import numpy as np
import pytest
from keras import layers

from trainer.models import UnknownArchError, count_macs, make_model, replace_head
from trainer.recipe import ARCH_DEFAULTS, hparams_for


def test_seed_is_the_original_recipe_layer_for_layer():
    model = make_model("seed", (32, 32, 3), 10)
    kinds = [type(layer).__name__ for layer in model.layers[1:]]
    assert kinds == [
        "Rescaling",  # the recipe's X /= 255, moved inside the model
        "Conv2D",
        "Activation",
        "MaxPooling2D",
        "Dropout",
        "Flatten",
        "Dense",
        "Activation",
        "Dropout",
        "Dense",
        "Activation",
    ]
    conv, dense, head = (model.get_layer(n) for n in ("conv2d", "dense", "head"))
    assert (conv.filters, conv.kernel_size, conv.padding) == (32, (3, 3), "same")
    assert conv.count_params() == 896
    assert model.get_layer("max_pooling2d").pool_size == (2, 2)
    assert model.get_layer("dropout").rate == 0.25
    assert model.get_layer("dropout_1").rate == 0.5
    assert model.get_layer("flatten").output.shape[-1] == 8192
    assert dense.units == 512 and dense.count_params() == 8192 * 512 + 512
    assert head.units == 10 and head.count_params() == 5130
    assert model.get_layer("softmax").activation.__name__ == "softmax"
    assert model.count_params() == 4_200_842


def test_seed_defaults_are_the_recipe_training_settings():
    hp = hparams_for("seed")
    assert (hp.optimizer, hp.lr, hp.batch_size, hp.epochs, hp.val_split) == (
        "rmsprop",
        1e-3,
        128,
        20,
        0.2,
    )
    assert hp.label_smoothing == 0.0 and not hp.augment and hp.schedule == "constant"


def test_flags_override_arch_defaults():
    hp = hparams_for("resnet", epochs=3, batch_size=None)
    assert hp.epochs == 3
    assert hp.batch_size == ARCH_DEFAULTS["resnet"]["batch_size"]


def test_resnet_convs_have_no_bias_and_feed_batchnorm():
    model = make_model("resnet", (32, 32, 3), 10, width=8)
    convs = [layer for layer in model.layers if isinstance(layer, layers.Conv2D)]
    assert len(convs) == 8
    for conv in convs:
        assert not conv.use_bias
        assert model.get_layer(conv.name.replace("_conv", "_bn"))
    assert count_macs(model) == 92_160 * 8 * 8 + 27_648 * 8 + 64 * 10
    assert model.get_layer("logit_scale").scale == 0.125


def test_models_take_raw_pixels():
    model = make_model("tiny", (32, 32, 3), 3)
    assert isinstance(model.layers[1], layers.Rescaling)
    probs = model(np.full((2, 32, 32, 3), 255.0, np.float32), training=False)
    assert np.allclose(np.sum(probs, axis=1), 1.0, atol=1e-5)


def test_unknown_arch_is_refused():
    with pytest.raises(UnknownArchError, match="unknown arch 'vgg'"):
        make_model("vgg", (32, 32, 3), 3)


def test_replace_head_keeps_known_labels_rows():
    model = make_model("tiny", (32, 32, 3), 3)
    old = ["deer", "fox", "owl"]
    new = ["badger", "deer", "fox", "owl"]
    swapped = replace_head(model, new, old)
    assert swapped.output_shape == (None, 4)
    old_kernel, _ = model.get_layer("head").get_weights()
    new_kernel, _ = swapped.layers[-2].get_weights()
    assert np.array_equal(new_kernel[:, 1:], old_kernel)
    assert swapped.get_layer("conv1") is model.get_layer("conv1")  # body is shared


def test_replace_head_keeps_resnet_logit_scale():
    model = make_model("resnet", (32, 32, 3), 3, width=4)
    swapped = replace_head(model, ["a", "b", "c", "d"], None)
    assert swapped.get_layer("logit_scale").scale == model.get_layer("logit_scale").scale
    assert swapped.output_shape == (None, 4)


def test_resnet_batchnorm_folds_into_the_convolutions_in_int8():
    from edge_agent.vision.classifier import load_interpreter_class
    from trainer.export import convert_int8

    model = make_model("resnet", (32, 32, 3), 3, width=4)
    calibration = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    interpreter_class, _ = load_interpreter_class()
    interpreter = interpreter_class(model_content=convert_int8(model, calibration))
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert "CONV_2D" in ops
    assert not ops & {"MUL", "SUB", "DIV", "RSQRT"}, ops  # no BatchNorm or Rescaling left

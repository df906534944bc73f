"""HParams is the one source: the options of ``train`` and the manifest's training block
are generated from it, and old run folders still read back."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

from trainer.cli import main
from trainer.options import hparam_overrides
from trainer.recipe import ARCH_DEFAULTS, HParams, hparams_for
from trainer.run_folder import training_summary

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "default"


def train_options() -> dict[str, click.Option]:
    return {p.name: p for p in main.commands["train"].params if isinstance(p, click.Option)}


def parsed(*args: str) -> dict:
    """What ``trapcount-train train ARGS`` hands its function (click parses, nothing runs)."""
    with main.commands["train"].make_context("train", list(args)) as ctx:
        return dict(ctx.params)


def test_every_flagged_field_is_an_option_named_after_it():
    options = train_options()
    flagged = [f.name for f in dataclasses.fields(HParams) if f.metadata.get("flag")]
    left_out = parsed()
    for name in flagged:
        assert options[name].opts == ["--" + name.replace("_", "-")], name
        assert left_out[name] in (None, ()), name  # so that the arch's default applies
    assert options["augment"].secondary_opts == ["--no-augment"]
    assert isinstance(options["epochs"].type, click.IntRange)
    assert options["epochs"].type.min == 1
    assert options["tta"].type.choices == ("none", "flip", "flip-shift")
    # recipe details that are not command-line options
    for name in ("arch", "optimizer", "schedule", "momentum", "lookahead", "calibration_images"):
        assert name not in flagged


def test_help_shows_the_defaults_each_arch_gets():
    options = train_options()
    epochs = ", ".join(f"{values['epochs']} ({arch})" for arch, values in ARCH_DEFAULTS.items())
    assert options["epochs"].help.endswith(f"[default: {epochs}]")
    assert options["cutout"].help.endswith("[default: 0 (seed, resnet, tiny), 12 (airbench)]")
    assert options["teacher_weight"].help.endswith("[default: 0.5]")
    assert "[default" not in options["teacher"].help  # no teacher unless given


def test_options_left_out_keep_the_arch_defaults():
    for arch in ARCH_DEFAULTS:
        assert hparams_for(arch, **hparam_overrides(parsed())) == hparams_for(arch)


def test_options_given_become_the_fields():
    values = parsed(
        "--input-size", "40", "--no-augment", "--teacher", "a.keras", "--teacher", "b.keras",
        "--epochs", "3", "--teacher-tta", "flip",
    )  # fmt: skip
    hp = hparams_for("airbench", **hparam_overrides(values))
    assert hp.input_size == (40, 40)
    assert (hp.augment, hp.epochs, hp.teacher_tta) == (False, 3, "flip")
    assert hp.teacher == ["a.keras", "b.keras"]
    assert hp.batch_size == ARCH_DEFAULTS["airbench"]["batch_size"]


def test_the_shipped_run_reads_back_and_gives_its_manifest_training_block():
    """models/default was trained before HParams generated anything: its config.json still
    loads, and the training block generated from it is the one its manifest holds."""
    config = json.loads((SHIPPED / "config.json").read_text())
    manifest = json.loads((SHIPPED / "model.json").read_text())
    hp = HParams.from_dict(config["hparams"])
    assert hp.to_dict() == {**hp.to_dict(), **config["hparams"]}  # every value read back
    training = training_summary(config, hp, config["epochs_done"])
    expected = {k: v for k, v in manifest["training"].items() if k != "exported_from"}
    assert training == expected

"""``trapcount-train compare OLD NEW --data DIR``: per-class int8 accuracy of two models on
the same images, and the refusal of a worse NEW model."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.trainer.conftest import CLASSES, write_class_folders
from trainer.cli import main
from trainer.compare import Comparison, ModelScores

pytest.importorskip("tensorflow", reason="the trainer needs TensorFlow")


@pytest.fixture(scope="module")
def badger_run(tmp_path_factory: pytest.TempPathFactory, tiny_run: Path) -> tuple[Path, Path]:
    """The shared tiny model fine-tuned with a new label (badger), and held-out data."""
    from trainer.run import train_and_export

    root = tmp_path_factory.mktemp("compare")
    train = write_class_folders(root / "train", 40, seed=11, classes=("badger", *CLASSES))
    val = write_class_folders(
        root / "val", 20, seed=12, classes=("badger", *CLASSES), corrupt=False
    )
    new = train_and_export(
        data=[train],
        out=root / "new",
        arch="tiny",
        epochs=3,
        seed=0,
        max_quant_drop=100.0,
        use_cache=False,
        init_from=tiny_run / "model.keras",
    )
    return new, val


def test_compare_prints_per_class_accuracy_of_both_models(tiny_run, badger_run):
    new, val = badger_run
    result = CliRunner().invoke(
        main, ["compare", str(tiny_run), str(new), "--data", str(val), "--force", "-q"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"old  {tiny_run}" and lines[1] == f"new  {new}"
    assert lines[2].split() == ["class", "images", "old", "new"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[3:7]}
    assert sorted(rows) == ["badger", "deer", "fox", "owl"]
    assert all(row[0] == "20" for row in rows.values())
    assert rows["badger"][1] == "-" and rows["badger"][2].endswith("%")  # OLD lacks badger
    assert all(
        row[1].endswith("%") and row[2].endswith("%")
        for label, row in rows.items()
        if label != "badger"
    )
    assert lines[7].startswith("overall (own labels)") and "60/80" in lines[7]
    assert lines[8].startswith("overall (shared labels)") and " 60 " in lines[8]
    assert "NEW is" in lines[9]


def test_compare_of_a_model_with_itself_is_not_worse(tiny_run, badger_run):
    _, val = badger_run
    result = CliRunner().invoke(
        main, ["compare", str(tiny_run), str(tiny_run), "--data", str(val), "-q"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "NEW is not worse on the shared labels"


def scores(labels, truth, predicted, name="m"):
    return ModelScores(name, list(labels), list(truth), list(predicted))


def test_the_verdict_uses_the_images_both_models_know():
    truth = ["deer", "deer", "fox", "fox", "badger", "badger"]
    old = scores(["deer", "fox"], truth, ["deer", "deer", "fox", "fox", "fox", "deer"])
    # NEW gets badger right but calls one fox a badger: worse on the shared labels
    new = scores(
        ["badger", "deer", "fox"], truth, ["deer", "deer", "fox", "badger", "badger", "badger"]
    )
    counts = {"deer": 2, "fox": 2, "badger": 2}
    comparison = Comparison(old, new, counts, tolerance=0.0)
    assert comparison.shared == {"deer", "fox"}
    assert comparison.old_shared == 1.0 and comparison.new_shared == 0.75
    assert comparison.worse
    assert not Comparison(old, new, counts, tolerance=30.0).worse
    assert old.accuracy_on(set(old.labels)) == (1.0, 4)  # badger images are not OLD's to know
    assert new.accuracy_on(set(new.labels)) == (5 / 6, 6)
    table = comparison.table()
    assert "badger" in table.splitlines()[1] and "-" in table.splitlines()[1].split()


def test_a_worse_model_is_refused_unless_forced(monkeypatch, tmp_path):
    truth = ["deer", "fox"]
    old = scores(["deer", "fox"], truth, ["deer", "fox"])
    new = scores(["deer", "fox"], truth, ["deer", "deer"])
    monkeypatch.setattr(
        "trainer.compare.compare_models",
        lambda *a, **k: Comparison(old, new, {"deer": 1, "fox": 1}, 0.0),
    )
    args = ["compare", str(tmp_path / "old"), str(tmp_path / "new"), "--data", str(tmp_path)]
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 1
    assert "NEW is worse on the shared labels (50.0% < 100.0%)" in refused.output
    forced = CliRunner().invoke(main, [*args, "--force"])
    assert forced.exit_code == 0 and "accepted with --force" in forced.output

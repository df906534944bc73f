"""Copy a finished training run into ``models/default`` (or another folder) for shipping.

    .venv/bin/python scripts/ship_model.py runs/airbench48-e20
    .venv/bin/python scripts/ship_model.py runs/field-s4 --grey runs/grey-s1


- copies model.tflite, model.json, metrics.json, config.json, confusion.png and curve.png
  as they are (the manifest's sha256 still matches the .tflite; a run too old to have the
  curve gets one drawn from its config.json history);
- re-saves model.keras without the optimizer state (for ``--init-from``: half the size);
- rewrites absolute paths in the JSON files relative to the repository root, so no
  machine's directory layout is committed (``/home/me/trapcount/../shared/data/x`` becomes
  ``../shared/data/x``);
- with ``--grey RUN``, adds that run's network as the grey companion
  (``trapcount-train pair``; its run records stay in RUN: the companion is re-made from the
  shipped model.keras by the command in models/default/README.md) and measures the pair on
  the colour run's validation split (its data, as config.json records it);
- loads the result through ``edge_agent.vision.classifier.Classifier`` as the trap will.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge_agent.manifest import GREY_FILENAME  # noqa: E402 - after the path above

COPIED = ("model.tflite", "model.json", "metrics.json", "config.json", "confusion.png")


def relative_paths(value: Any, root: Path) -> Any:
    """Every absolute path string under ``root``'s parent, made relative to ``root``."""
    if isinstance(value, dict):
        return {k: relative_paths(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [relative_paths(v, root) for v in value]
    if isinstance(value, str) and value.startswith(str(root.parent) + os.sep):
        return os.path.relpath(value, root)
    return value


def ship(run: Path, dest: Path, grey: Path | None = None) -> None:
    missing = [name for name in (*COPIED, "model.keras") if not (run / name).is_file()]
    if missing:
        raise SystemExit(f"{run} is not a finished, exported run: no {', '.join(missing)}")
    dest.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        shutil.copy2(run / name, dest / name)
    if (run / "curve.png").is_file():
        shutil.copy2(run / "curve.png", dest / "curve.png")
    else:  # a run exported before the trainer drew curves
        from trainer.export import plot_run_curve

        config = json.loads((run / "config.json").read_text(encoding="utf-8"))
        metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
        network = config.get("network", config["hparams"]["arch"])
        plot_run_curve(
            config.get("history", []), network, metrics["int8_accuracy"], dest / "curve.png"
        )
    stale = dest / GREY_FILENAME
    if stale.exists():
        stale.unlink()  # the companion of the model shipped before
    if grey is not None:  # before the paths below are made relative: model.json gains some
        from trainer.evaluate import evaluate_model_dir
        from trainer.pair import pair_models, record_pair_accuracy

        pair_models(dest, grey, dest)
        # The pair measured as the trap runs it, on the colour run's validation split.
        recorded = json.loads((dest / "config.json").read_text(encoding="utf-8"))["data"]
        specs = [spec if isinstance(spec, str) else spec["coco"] for spec in recorded]
        record_pair_accuracy(dest, evaluate_model_dir(dest, specs, grey=True))
    for name in ("model.json", "metrics.json", "config.json"):
        path = dest / name
        data = json.loads(path.read_text(encoding="utf-8"))
        path.write_text(json.dumps(relative_paths(data, ROOT), indent=2) + "\n", encoding="utf-8")

    import keras

    import trainer.models  # noqa: F401 - registers the custom layers for loading

    model = keras.models.load_model(run / "model.keras", compile=False)
    model.save(dest / "model.keras")

    from edge_agent.vision.classifier import Classifier

    with Classifier(dest) as classifier:
        accuracy = classifier.manifest.accuracy
        print(f"{dest}: {len(classifier.labels)} labels, int8 accuracy {accuracy['int8']:.4f}")
        if classifier.has_grey_companion:
            print(f"{dest}: grey companion from {grey}, model {classifier.manifest.version}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished run folder of trapcount-train")
    parser.add_argument("--to", type=Path, default=ROOT / "models" / "default")
    parser.add_argument(
        "--grey", type=Path, help="a finished run whose network classifies grey crops"
    )
    args = parser.parse_args(argv)
    ship(args.run, args.to, args.grey)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Device check: does the resnet recipe (trainer.models + trainer.recipe hparams) reach >90%?

Keras 3 on the JAX backend (the device has no TensorFlow); augmentation in numpy, same as
the tf.data pipeline (reflect pad 4, random crop, flip). Same 40k/10k stratified split.

Run from the repository root, with the CIFAR-10 JPEG archive copied to
``.cache/cifar10-train-jpeg.tar.gz`` and Keras 3 + JAX installed:

    KERAS_BACKEND=jax python benchmarks/recipe_check_jax.py SECONDS 16x40 32x30:wd=5e-3

``SECONDS`` bounds the whole run; each further argument is ``WIDTHxEPOCHS`` with optional
``:key=value`` hyperparameter overrides. It prints the final validation accuracy and the
seconds of each configuration (the GPU table in docs/benchmarks.md came from it).
"""

import json
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
import numpy as np

sys.path.insert(0, os.getcwd())
import keras

from trainer.data import load_datasets, stratified_split
from trainer.fit import compile_model
from trainer.models import count_macs
from trainer.recipe import hparams_for

OUT = os.environ.get("OUT", "/tmp")
deadline = time.monotonic() + float(sys.argv[1])
configs = []  # WIDTHxEPOCHS[:key=value...]
for c in sys.argv[2:]:
    head, *opts = c.split(":")
    w, e = (int(v) for v in head.split("x"))
    configs.append((w, e, dict(o.split("=") for o in opts)))

t0 = time.monotonic()
data = load_datasets([".cache/cifar10-train-jpeg.tar.gz"], use_cache=False)
split = stratified_split(data, 0.2, 0)
xtr, ytr = split.train.images, split.train.labels
xva, yva = split.val.images.astype(np.float32), split.val.labels
print(f"data {len(xtr)}/{len(xva)} in {time.monotonic() - t0:.0f}s", flush=True)
rng = np.random.default_rng(0)


def augment(x):
    n = len(x)
    padded = np.pad(x, ((0, 0), (4, 4), (4, 4), (0, 0)), mode="reflect")
    dy, dx = rng.integers(0, 9, n), rng.integers(0, 9, n)
    rows = dy[:, None] + np.arange(32)[None]
    cols = dx[:, None] + np.arange(32)[None]
    out = padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    flip = rng.random(n) < 0.5
    out[flip] = out[flip, :, ::-1]
    return out.astype(np.float32)


results = []
from trainer.models import resnet_model  # noqa: E402

for width, epochs, opts in configs:
    keras.utils.set_random_seed(0)
    scale = float(opts.pop("scale", 0.125))
    hp = hparams_for("resnet", width=width, epochs=epochs, **{k: float(v) for k, v in opts.items()})
    model = resnet_model((32, 32, 3), 10, width=width, logit_scale=scale)
    steps = int(np.ceil(len(xtr) / hp.batch_size))
    compile_model(model, hp, steps)
    onehot = keras.utils.to_categorical(ytr, 10)
    row = {
        "width": width,
        "epochs": epochs,
        "scale": scale,
        "wd": hp.weight_decay,
        "lr": hp.lr,
        "params": model.count_params(),
        "macs": count_macs(model),
        "val": [],
    }
    start = time.monotonic()
    for epoch in range(epochs):
        if time.monotonic() > deadline:
            row["cut"] = epoch
            break
        e0 = time.monotonic()
        model.fit(
            augment(xtr),
            onehot,
            batch_size=hp.batch_size,
            epochs=epoch + 1,
            initial_epoch=epoch,
            shuffle=True,
            verbose=0,
        )
        pred = np.argmax(model.predict(xva, batch_size=1024, verbose=0), axis=1)
        acc = float(np.mean(pred == yva))
        row["val"].append(round(acc, 4))
        print(
            f"w{width} e{epochs} s{scale} wd{hp.weight_decay} lr{hp.lr}: "
            f"epoch {epoch + 1} val {acc:.4f} {time.monotonic() - e0:.1f}s",
            flush=True,
        )
    row["seconds"] = round(time.monotonic() - start, 1)
    row["final"] = row["val"][-1] if row["val"] else None
    results.append(row)
    with open(os.path.join(OUT, "recipe.json"), "w") as f:
        json.dump(results, f, indent=1)
print(json.dumps([{k: v for k, v in r.items() if k != "val"} for r in results]))

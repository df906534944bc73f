"""Extract the small CIFAR-10 sample the demo video is made from.

    python scripts/make_demo_sprites.py ../shared/data/cifar10-train-jpeg.tar.gz

writes ``edge_agent/demo/samples/sprites/<class>/<index>.png``: a few images of each animal class
drawn at random (fixed seed) from the CIFAR-10 training set. They are upscaled and walked
across a synthetic background by ``edge_agent.demo.scenes`` to make the sample camera-trap video.
"""

from __future__ import annotations

import argparse
import random
import tarfile
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

ANIMALS = ("bird", "cat", "deer", "dog", "frog", "horse")
OUT = Path(__file__).resolve().parent.parent / "edge_agent" / "demo" / "samples" / "sprites"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive", type=Path)
    parser.add_argument("--per-class", type=int, default=6)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    with tarfile.open(args.archive) as tar:
        by_class: dict[str, list[tarfile.TarInfo]] = defaultdict(list)
        for member in tar.getmembers():
            parts = Path(member.name).parts
            if member.isfile() and len(parts) >= 2 and parts[-2] in ANIMALS:
                by_class[parts[-2]].append(member)
        rng = random.Random(args.seed)
        for label in ANIMALS:
            members = sorted(by_class[label], key=lambda m: m.name)
            chosen = rng.sample(members, args.per_class)
            target = OUT / label
            target.mkdir(parents=True, exist_ok=True)
            for member in chosen:
                data = tar.extractfile(member).read()
                name = Path(member.name).stem + ".png"
                # Re-encode losslessly so the sample does not depend on a JPEG decoder's quirks.
                image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
                cv2.imwrite(str(target / name), image)
            print(f"{label}: {len(chosen)} images")


if __name__ == "__main__":
    main()

"""Fixtures for the frame-pipeline tests. Scenes, videos and sprite data come from
``edge_agent.demo.scenes`` (the README demo and the benchmarks use the same generator); this
file only wires them to pytest."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.demo.writers import write_sprite_dataset


@pytest.fixture(scope="session")
def sprite_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real tiny int8 model trained on ``write_sprite_dataset`` crops (deer, boar, fox, hare).

    Trained once per session with the trainer (skipped where TensorFlow is not installed,
    as on a Pi); about 20 s on two cores.
    """
    pytest.importorskip("tensorflow", reason="training the test model needs TensorFlow")
    from trainer.run import train_and_export

    root = tmp_path_factory.mktemp("sprite-model")
    write_sprite_dataset(root / "crops", per_class=150, size=32, seed=0)
    return train_and_export(
        data=[root / "crops"],
        out=root / "model",
        arch="tiny",
        epochs=8,
        seed=0,
        max_quant_drop=100.0,
        use_cache=False,
    )

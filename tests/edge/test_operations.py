"""Multiply-adds counted from a .tflite file's operators (``edge_agent.vision.operations``)."""

from __future__ import annotations

from pathlib import Path

from edge_agent.manifest import read_manifest
from edge_agent.vision.operations import multiply_adds

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "default"


def test_the_shipped_networks_cost_what_their_records_and_views_say():
    """The colour network's count is the one the trainer made on its Keras model; the grey
    companion is the same network run on a crop and its mirror, so twice that."""
    manifest = read_manifest(SHIPPED)
    colour = multiply_adds(SHIPPED / "model.tflite")
    assert colour == manifest.training["macs"]
    companion = manifest.grey_companion
    assert companion is not None and companion.tta == "flip"
    assert multiply_adds(companion.path(SHIPPED)) == 2 * colour

"""The one rule for class labels, shared by the model manifest, the trainer, the review page
and the exports.

A label is lower-case ASCII letters, digits, ``_`` and ``-``, 1 to 64 characters, starting
with a letter or a digit. Labels become folder names (``trapcount collect export`` writes
``OUT/<label>/``, the trainer reads class folders back), so the rule keeps out path
separators, ``..``, hidden names, spaces and anything a file system spells differently.

Standard library only: ``edge_agent.manifest`` imports it, and the trainer imports that.
"""

from __future__ import annotations

import re

# \A and \Z, not ^ and $: "$" also matches before a final newline ("deer\n"), and the anchors
# keep LABEL_RE.match() as strict as fullmatch() for any caller.
LABEL_RE = re.compile(r"\A[a-z0-9][a-z0-9_-]{0,63}\Z")
RULE = "lower-case letters, digits, '_' and '-', at most 64, starting with a letter or digit"
# Labels with a meaning of their own. ``unknown``: a crop below the confidence threshold (an
# animal, but not one the model knows well enough). ``empty``: no animal (a model that
# learned it from empty trap frames says so of a motion false positive; a reviewer says so
# of a crop): never counted. ``person``: counted, never pictured. ``other``: a model's class
# for animals of species it has no class of its own for (learned from real trap frames of
# agoutis, peccaries, foxes...): the edge agent counts it as ``unknown``, the name reports
# and exports know for an animal whose species is not told.
UNKNOWN = "unknown"
EMPTY = "empty"
OTHER = "other"
PERSON = "person"
# A detector's category (``vision.megadetector``: its boxes say vehicle) that the tracker
# gives as a label of its own, whatever the crops said.
VEHICLE = "vehicle"
# Labels that are no animal, or no animal the classifier was sure of.
NOT_ANIMALS = frozenset({PERSON, UNKNOWN, EMPTY})
# Longer labels are cut in messages, which must stay one readable line.
_SHOWN = 60


def shown(label: object) -> str:
    """``label`` for a one-line message: its repr (newlines escaped), cut when long."""
    text = repr(label)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def is_valid_label(label: object) -> bool:
    return isinstance(label, str) and LABEL_RE.fullmatch(label) is not None


def check_label(label: object) -> str:
    """``label`` itself when it keeps the rule; ValueError (one line) when not."""
    if not is_valid_label(label):
        raise ValueError(f"bad label {shown(label)}: use {RULE}")
    return label  # type: ignore[return-value]


def normalise_label(text: str) -> str:
    """A person's label as a valid one: trimmed, lower case, runs of spaces as ``_``
    ("  Red Fox " -> "red_fox"); ValueError (one line) when the result breaks the rule."""
    label = "_".join(text.strip().lower().split())
    if not is_valid_label(label):
        raise ValueError(f"bad label {shown(text)}: use {RULE}")
    return label

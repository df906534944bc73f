"""The one label rule (edge_agent.labels) that the manifest, the trainer, the review page
and the exports share: labels become folder names."""

from __future__ import annotations

import pytest

from edge_agent.labels import LABEL_RE, check_label, is_valid_label, normalise_label

BAD = ["", "Red Fox", "red fox", "../x", "a/b", "a\\b", ".hidden", "-x", "_x", "x" * 65, "é"]


def test_valid_labels():
    for label in ("deer", "red_fox", "roe-deer", "b2", "9lives", "x" * 64):
        assert is_valid_label(label) and check_label(label) == label


@pytest.mark.parametrize("label", [*BAD, "deer\n", None, 5])
def test_invalid_labels_are_refused_in_one_line(label):
    assert not is_valid_label(label)
    with pytest.raises(ValueError, match="bad label") as info:
        check_label(label)
    assert "\n" not in str(info.value) and len(str(info.value)) < 200


def test_the_pattern_is_anchored_for_match_too():
    """A trailing newline passed ``^...$`` with re.match; the pattern itself is strict now."""
    assert LABEL_RE.match("deer\n") is None and LABEL_RE.match("deer/../x") is None


def test_normalise_label():
    assert normalise_label("  Red   Fox ") == "red_fox"
    assert normalise_label("DEER") == "deer"
    for bad in ("", "../x", "a/b", "é", "x" * 65):
        with pytest.raises(ValueError, match="bad label"):
            normalise_label(bad)

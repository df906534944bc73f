"""Debian's headless Chromium, driven by Playwright, for the page tests.

Never `playwright install`: the machine has no network for a browser download, and CI
apt-installs `chromium`. The flags keep Chromium from reaching for the network and from
needing a sandbox when the tests run as root.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed (apt-get install chromium)"
)


def launch(driver: Any, tmp_path: Path, **options: Any) -> Any:
    """A headless Chromium context with a fresh profile under ``tmp_path`` (passed by
    ``launch_persistent_context`` as --user-data-dir)."""
    return driver.chromium.launch_persistent_context(
        tempfile.mkdtemp(dir=tmp_path, prefix="chromium-profile-"),
        executable_path=str(CHROMIUM),
        headless=True,
        args=CHROMIUM_FLAGS,
        **options,
    )

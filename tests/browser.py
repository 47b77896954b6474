"""The browser the UI tests drive: Debian's Chromium (Playwright's own download does not work here).

Without it a browser test is skipped with one line saying how to enable it; under CI it fails
instead, so a CI run can never pass without having driven a browser.
"""
import os
import shutil

import pytest

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
MISSING = ("Chromium not found{where}; install Debian's chromium package (apt-get install chromium) "
           "or set RAG_CHROMIUM=/path/to/chromium")


def chromium() -> str:
    """The browser to drive: $RAG_CHROMIUM if set, else Debian's chromium. Skips the test when there
    is none, or fails it under CI."""
    wanted = os.environ.get("RAG_CHROMIUM")
    path = wanted or shutil.which("chromium") or "/usr/bin/chromium"
    if os.path.isfile(path) and os.access(path, os.X_OK):
        return path
    message = MISSING.format(where=f" at RAG_CHROMIUM={wanted}" if wanted else "")
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail("browser test failed (under CI a missing browser is a failure): " + message, pytrace=False)
    pytest.skip("browser test skipped: " + message)

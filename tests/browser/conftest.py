"""The browser suite: JupyterLab driven in headless Chromium (see harness.py).

Every test here is marked ``browser`` and skipped, with the reason, where chromium or
playwright is missing (``.ci/install_browser.sh`` installs both). Select it with
``pytest -m browser``; leave it out with ``-m "not browser"``.
"""
import sys
from pathlib import Path

import pytest

if str(Path(__file__).parent) not in sys.path:  # also under --import-mode=importlib
    sys.path.insert(0, str(Path(__file__).parent))

from harness import LabServer, launch_browser, missing_reason


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "browser: JupyterLab in headless Chromium (needs chromium + playwright; "
                   "see .ci/install_browser.sh)")


def pytest_collection_modifyitems(config, items):
    reason = missing_reason()
    if reason:
        for item in items:
            if item.get_closest_marker("browser"):
                item.add_marker(pytest.mark.skip(reason=f"browser suite: {reason}"))


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """One JupyterLab server for the whole suite; each test copies its notebook into its root."""
    if missing_reason():
        pytest.skip(missing_reason())
    with LabServer(tmp_path_factory.mktemp("jupyterlab")) as server:
        yield server


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """One headless Chromium (Debian's) for the whole suite; each test gets a fresh context."""
    if missing_reason():
        pytest.skip(missing_reason())
    with launch_browser(tmp_path_factory.mktemp("chromium-home")) as b:
        yield b

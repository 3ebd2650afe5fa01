"""Pytest plugin, loaded with `-p` from pyproject.toml: gives each test session its own VIAS_DATA_DIR.

It must be a `-p` plugin rather than part of conftest.py: pytest-django imports vias.settings
(which reads VIAS_DATA_DIR once) before pytest loads any conftest, while `-p` plugins are
imported before pytest-django starts. The tests must never share ./data (or the Redis socket in it)
with a running `manage.py up`.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

# A short path: the Redis unix socket lives in it, and socket paths are limited to 107 bytes.
DATA_DIR = tempfile.mkdtemp(prefix="vias-test-")
os.environ["VIAS_DATA_DIR"] = DATA_DIR
# Test sessions running side by side share one Redis: keep their control-channel keys apart.
os.environ["VIAS_CONTROL_PREFIX"] = f"vias-test-{os.getpid()}:ctl"


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(DATA_DIR, ignore_errors=True)

"""mypy (with django-stubs and djangorestframework-stubs) is clean on the non-test code, so CI's
`make test` holds the types as `make lint` does. Settings and files: [tool.mypy] in pyproject.toml."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_mypy_finds_no_error_in_the_non_test_code(tmp_path):
    env = {**os.environ, "VIAS_DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(ROOT / ".mypy_cache")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Success: no issues found" in done.stdout

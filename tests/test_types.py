"""The package type-checks: mypy (pinned in the `test` extra, configured in pyproject.toml) passes on
aihubmix_magic/, with every function of the typed request, the protocol core, the drivers and the public
API annotated (`disallow_untyped_defs` for those modules)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_mypy_passes(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "mypy-cache"), "--no-error-summary"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_package_says_it_is_typed():
    assert (ROOT / "aihubmix_magic" / "py.typed").is_file()

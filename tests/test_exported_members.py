"""The public surface: `__all__` lists exactly what users import, and importing stays light."""

from __future__ import annotations

import subprocess
import sys

import aihubmix_magic


def test_all_is_sorted_and_complete():
    public = {name for name in dir(aihubmix_magic) if not name.startswith("_")} | {"__version__"}
    modules = {name for name in public if type(getattr(aihubmix_magic, name)).__name__ == "module"}
    assert set(aihubmix_magic.__all__) == public - modules
    assert aihubmix_magic.__all__ == sorted(aihubmix_magic.__all__)


def test_import_does_not_load_heavy_modules():
    code = ("import sys, aihubmix_magic; "
            "print(sorted(m for m in ('ipywidgets', 'nbformat', 'pandas', 'IPython') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_batch_job_is_exported_and_loaded_on_first_use():
    code = ("import sys, aihubmix_magic; print('aihubmix_magic._batchjob' in sys.modules); "
            "from aihubmix_magic import BatchJob; print(BatchJob.__module__, 'BatchJob' in aihubmix_magic.__all__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "aihubmix_magic._batchjob", "True"]

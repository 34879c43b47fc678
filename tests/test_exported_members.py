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


def test_logs_is_exported_lazily():
    code = ("import sys, aihubmix_magic; assert 'aihubmix_magic.store.log' not in sys.modules and 'sqlite3' not in "
            "sys.modules; f = aihubmix_magic.logs; print(f.__module__, 'aihubmix_magic.store.log' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["aihubmix_magic.session.log", "True"]


def test_load_ext_does_not_load_the_log():
    code = ("import sys\nfrom IPython.testing.globalipapp import start_ipython\nip = start_ipython()\n"
            "ip.run_line_magic('load_ext', 'aihubmix_magic')\n"
            "print(sorted(m for m in ('aihubmix_magic.store.log', 'aihubmix_magic.session.log') if m in sys.modules))")
    # (IPython loads sqlite3 itself)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_batch_job_is_exported_and_loaded_on_first_use():
    code = ("import sys, aihubmix_magic; print('aihubmix_magic.services.batchjob' in sys.modules); "
            "from aihubmix_magic import BatchJob; print(BatchJob.__module__, 'BatchJob' in aihubmix_magic.__all__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "aihubmix_magic.services.batchjob", "True"]

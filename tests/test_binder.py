"""Binder: install from exactly the files in binder/ into a fresh virtualenv (no system site-packages),
as mybinder.org's repo2docker does, then import the package and use the extension in demo mode.

Needs PyPI (or the pip index configured on this machine); pip's cache makes re-runs quick. Set
AIHUBMIX_SKIP_BINDER_TEST=1 to skip it where there is no package index.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import without_tripwire

ROOT = Path(__file__).resolve().parent.parent
BINDER = ROOT / "binder"
# what a clone of the repository holds that the install and the examples need
COPIED = ("pyproject.toml", "README.md", "aihubmix_magic", "binder", "examples")

pytestmark = pytest.mark.skipif(bool(os.environ.get("AIHUBMIX_SKIP_BINDER_TEST")),
                                reason="AIHUBMIX_SKIP_BINDER_TEST is set")

CHECK = textwrap.dedent("""
    import io, sys
    from contextlib import redirect_stdout
    from pathlib import Path

    import aihubmix_magic
    assert Path(aihubmix_magic.__file__).resolve().is_relative_to(Path(sys.prefix).resolve()), aihubmix_magic.__file__
    assert "nbformat" not in sys.modules and "ipywidgets" not in sys.modules

    import ipywidgets, matplotlib, nbformat, pandas  # what the examples use
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    out = io.StringIO()
    with redirect_stdout(out):
        ip.run_line_magic("load_ext", "aihubmix_magic")
        ip.run_line_magic("aihubmix", "demo auto")
        ip.run_cell_magic("aihubmix", "-m gpt-4o-mini", "Say hello, with a heading.")
    text = out.getvalue()
    assert "Demo mode" in text and "Simulated answer from gpt-4o-mini" in text, text
    print("BINDER OK", aihubmix_magic.__version__, sys.version.split()[0])
""")


def run(argv, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, f"{' '.join(map(str, argv))} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def test_binder_files_describe_the_environment():
    requirements = (BINDER / "requirements.txt").read_text().splitlines()
    names = {line.split(">")[0].split("=")[0].strip() for line in requirements if line and not line.startswith("#")}
    assert {"ipython", "ipywidgets", "httpx", "nbformat", "pandas", "matplotlib"} <= names
    post_build = BINDER / "postBuild"
    assert post_build.read_text().startswith("#!") and os.access(post_build, os.X_OK)
    badge = "https://mybinder.org/v2/gh/OWNER/aihubmix-magic/main?labpath=examples%2F01-quickstart.ipynb"
    assert badge in (ROOT / "README.md").read_text()


def test_fresh_virtualenv_from_the_binder_files(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, repo / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, repo / name)
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)])  # a clean venv: no --system-site-packages
    python = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIHUBMIX_", "PYTHON", "VIRTUAL_ENV", "JUPYTER"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    env["HOME"] = os.environ.get("HOME", str(tmp_path))  # pip's cache lives there
    env["AIHUBMIX_CACHE_PATH"] = str(tmp_path / "cache" / "responses.sqlite")  # the catalog's cache: not in HOME
    # Binder's build steps install from the package index (postBuild builds the package, which fetches
    # setuptools): the only steps here that may use the network; the notebook check below may not
    run([str(python), "-m", "pip", "install", "-q", "-r", "binder/requirements.txt"], cwd=repo,
        env=without_tripwire(env))
    run(["bash", "binder/postBuild"], cwd=repo, env=without_tripwire(env))
    result = run([str(python), "-c", CHECK], cwd=repo / "examples", env=env)
    assert "BINDER OK" in result.stdout

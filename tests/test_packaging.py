"""The release artefacts: `python -m build` makes an sdist and a wheel without a single warning, `twine check
--strict` accepts both, and they hold the package, its PEP 639 licence metadata and nothing else.

Where the build runs: the `build` frontend runs from this interpreter (it is in the `test` extra), and it
creates a fresh isolated virtualenv for the build backend, installs `[build-system].requires` (setuptools)
into it from the package index, builds the sdist there, then builds the wheel *from that sdist* in another
fresh virtualenv. That is the fresh venv that matters: the backend sees nothing from the development
environment, and `test_the_backend_ran_in_a_fresh_isolated_venv` checks build really isolated it. (The
frontend's own environment does not change the artefacts, so a second outer venv would only cost time.)

The source is copied to a tmp dir first (the files git tracks or would track, so no `.venv`, `.git` or
caches) so the build never writes `build/`, `dist/` or `*.egg-info` into the repository. Needs the package
index for setuptools; the module takes about 8 s (one build, shared by its tests).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.conftest import without_tripwire

ROOT = Path(__file__).resolve().parent.parent
NAME = "aihubmix_magic"
RUNTIME_DEPENDENCIES = {"ipython", "ipywidgets", "httpx", "h11", "nbformat"}  # h11: the batch lanes read with it
CLASSIFIERS = {
    "Framework :: Jupyter",
    "Framework :: IPython",
    "Programming Language :: Python :: 3",
    "Programming Language :: Python :: 3 :: Only",
    "Programming Language :: Python :: 3.10",
    "Programming Language :: Python :: 3.11",
    "Programming Language :: Python :: 3.12",
    "Programming Language :: Python :: 3.13",
    "Typing :: Typed",
}

# What counts as a warning in the build output: a line with the word "warning"/"warn" in any case
# (`warning: ...` from distutils, `WARNING ...` as build re-prints a backend's warnings), a warning class name
# (`SetuptoolsDeprecationWarning: ...`, `UserWarning`), the word "deprecated", or the "!!" lines that frame
# setuptools' deprecation banners. Nothing else in a clean build's output (file names, "running ...",
# "copying ...") matches, see test_the_warning_filter.
WARNING = re.compile(r"(?i:\bwarn(ing)?s?\b)|\w+Warning\b|(?i:deprecat)|^\s*!!")


def warning_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if WARNING.search(line)]


def copy_source(destination: Path) -> None:
    """What a clone holds (tracked files and new files not ignored), without .venv/.git/caches."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                cwd=ROOT, capture_output=True, check=True).stdout.decode()
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: copy all but the usual junk
        shutil.copytree(ROOT, destination, ignore=shutil.ignore_patterns(
            ".git", ".venv", "__pycache__", "*.pyc", "*.egg-info", "build", "dist", ".*_cache", ".hypothesis",
            "test-artifacts", ".ipynb_checkpoints"))
        return
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # skips files deleted from the work tree but still in the index
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)


def run(argv, cwd) -> str:
    # PYTHONDONTWRITEBYTECODE (set on some machines) makes distutils print "warning: byte-compiling is
    # disabled": a property of the caller's environment, not of the package, so the build runs without it.
    # The build installs setuptools from the package index (build isolation): the one test that may use the
    # network, so conftest's tripwire proxy (which stops every other request off the machine) is taken away.
    env = {k: v for k, v in without_tripwire(dict(os.environ)).items() if k != "PYTHONDONTWRITEBYTECODE"}
    result = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(map(str, argv))} failed:\n{result.stdout[-5000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("packaging")
    source = tmp / "source"
    source.mkdir()
    copy_source(source)
    dist = tmp / "dist"
    output = run([sys.executable, "-m", "build", "--outdir", str(dist), str(source)], cwd=tmp)
    (sdist,) = dist.glob("*.tar.gz")
    (wheel,) = dist.glob("*.whl")
    return {"source": source, "output": output, "sdist": sdist, "wheel": wheel}


def test_the_build_prints_no_warnings(built):
    assert "Successfully built" in built["output"], built["output"]
    assert warning_lines(built["output"]) == [], built["output"]


def test_the_backend_ran_in_a_fresh_isolated_venv(built):
    output = built["output"]
    # once for the sdist, once for the wheel built from it; never --no-isolation
    assert output.count("* Creating isolated environment") == 2, output
    assert "* Building wheel from sdist" in output, output
    versions = re.findall(r"^\s*- setuptools==(\d+)\.", output, re.MULTILINE)
    assert versions and all(int(major) >= 77 for major in versions), output


def test_twine_check_strict_passes(built):
    output = run([sys.executable, "-m", "twine", "--no-color", "check", "--strict", str(built["sdist"]),
                  str(built["wheel"])], cwd=built["sdist"].parent)
    assert output.count("PASSED") == 2, output
    assert warning_lines(output) == [], output


def test_the_wheel_holds_the_package_and_the_licence_only(built):
    with zipfile.ZipFile(built["wheel"]) as wheel:
        names = wheel.namelist()
    dist_info = built["wheel"].name.split("-py3")[0] + ".dist-info"
    package = {name for name in names if name.startswith(f"{NAME}/")}
    source = built["source"]
    expected = {path.relative_to(source).as_posix() for path in (source / NAME).rglob("*")
                if (path.suffix == ".py" or path.name == "py.typed") and "__pycache__" not in path.parts}
    assert {f"{NAME}/__init__.py", f"{NAME}/simulator/__init__.py", f"{NAME}/core/protocol.py",
            f"{NAME}/py.typed"} <= expected
    assert package == expected
    assert f"{dist_info}/licenses/LICENSE" in names
    assert [name for name in names if not name.startswith((f"{NAME}/", f"{dist_info}/"))] == [], names
    assert not [name for name in names if name.split("/")[0] in {"tests", "examples", "benchmarks"}]


def test_the_sdist_holds_what_the_build_needs_and_no_junk(built):
    with tarfile.open(built["sdist"]) as sdist:
        names = sdist.getnames()
    top = built["sdist"].name.removesuffix(".tar.gz")
    relative = {name.removeprefix(f"{top}/") for name in names if name != top}
    assert {"pyproject.toml", "README.md", "LICENSE", "PKG-INFO", f"{NAME}/__init__.py", f"{NAME}/py.typed"} <= relative
    allowed_roots = {"pyproject.toml", "README.md", "LICENSE", "PKG-INFO", "setup.cfg", "MANIFEST.in", NAME,
                     f"{NAME}.egg-info"}
    assert {name.split("/")[0] for name in relative} <= allowed_roots, sorted(relative)
    assert not [name for name in relative if "__pycache__" in name or name.endswith((".pyc", ".pyo"))]


@pytest.mark.parametrize("artefact", ["wheel", "sdist"])
def test_the_metadata(built, artefact):
    if artefact == "wheel":
        with zipfile.ZipFile(built["wheel"]) as wheel:
            (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
            text = wheel.read(name).decode()
    else:
        with tarfile.open(built["sdist"]) as sdist:
            top = built["sdist"].name.removesuffix(".tar.gz")
            text = sdist.extractfile(f"{top}/PKG-INFO").read().decode()
    metadata = Parser().parsestr(text, headersonly=True)
    assert metadata["Metadata-Version"] == "2.4"
    assert metadata["License-Expression"] == "MIT"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert metadata["License"] is None  # the deprecated free-text field
    classifiers = set(metadata.get_all("Classifier"))
    assert CLASSIFIERS <= classifiers
    assert not [c for c in classifiers if c.startswith("License ::")]  # PEP 639: not with License-Expression
    assert metadata["Requires-Python"] == ">=3.10"
    requirements = [Requirement(line) for line in metadata.get_all("Requires-Dist")]
    assert {r.name for r in requirements if r.marker is None} == RUNTIME_DEPENDENCIES
    assert {"jupyter", "ipython"} <= set(metadata["Keywords"].split(","))
    assert metadata["Description-Content-Type"] == "text/markdown"


BANNER = """\
* Getting build dependencies for sdist...
running egg_info
writing manifest file 'aihubmix_magic.egg-info/SOURCES.txt'
WARNING `project.license` as a TOML table is deprecated
!!

        ********************************************************************************
        Please use a simple string containing a SPDX expression for `project.license`.
        By 2027-Feb-18, you need to update your project and remove deprecated calls
        ********************************************************************************

!!
/tmp/x/setuptools/dist.py:759: SetuptoolsDeprecationWarning: License classifiers are deprecated.
warning: build_py: byte-compiling is disabled, skipping.
copying aihubmix_magic/_sse.py -> build/lib/aihubmix_magic
adding 'aihubmix_magic-0.1.0.dist-info/licenses/LICENSE'
Successfully built aihubmix_magic-0.1.0.tar.gz and aihubmix_magic-0.1.0-py3-none-any.whl
"""


def test_the_warning_filter():
    """The filter catches what setuptools and build really print (the first banner is verbatim from building
    this project with `license = { text = "MIT" }`) and passes a clean build's ordinary lines."""
    assert warning_lines(BANNER) == [
        "WARNING `project.license` as a TOML table is deprecated",
        "!!",
        "        By 2027-Feb-18, you need to update your project and remove deprecated calls",
        "!!",
        "/tmp/x/setuptools/dist.py:759: SetuptoolsDeprecationWarning: License classifiers are deprecated.",
        "warning: build_py: byte-compiling is disabled, skipping.",
    ]

"""The documentation site builds as Read the Docs builds it: `sphinx-build -W --keep-going docs OUT` (every
warning an error), which also runs every example notebook in a kernel against the simulator (MyST-NB,
execution forced, a failing cell fails the build). Checks the pages are there, the executed notebooks show
simulated answers, the API reference documents the public names, and no page holds a key."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.docs

ROOT = Path(__file__).resolve().parent.parent
DEMO_KEY = "sk-demo-simulated-answers"
GUIDE = ["getting-started", "prompting", "commands", "control-panel", "compare", "batch", "tools",
         "context-and-fix", "saved-prompts", "cost", "cache-and-export", "python", "simulator", "troubleshooting",
         "streaming", "architecture", "benchmarks", "examples", "api"]
NOTEBOOKS = sorted(p.stem for p in (ROOT / "examples").glob("[0-9][0-9]-*.ipynb"))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_nb")
    pytest.importorskip("pydata_sphinx_theme")
    out = tmp_path_factory.mktemp("site")
    env = {name: value for name, value in os.environ.items() if not name.startswith("AIHUBMIX_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    started = time.perf_counter()
    build = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                            "-d", str(out / ".doctrees"), str(ROOT / "docs"), str(out / "html")],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    print(f"sphinx-build took {time.perf_counter() - started:.1f} s")
    warnings = [line for line in build.stderr.splitlines() if "WARNING" in line or "ERROR" in line]
    assert build.returncode == 0, "\n".join(warnings) or build.stderr[-3000:]
    return out / "html"


def text_of(path: Path) -> str:
    """The visible text of a page, roughly: tags and scripts removed."""
    html = path.read_text(encoding="utf-8")
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.DOTALL)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_every_page_is_built(site):
    assert (site / "index.html").exists()
    missing = [page for page in GUIDE if not (site / f"{page}.html").exists()]
    assert not missing
    assert NOTEBOOKS and all((site / "examples" / f"{name}.html").exists() for name in NOTEBOOKS)
    assert "Getting started" in text_of(site / "index.html")


def test_executed_notebooks_show_simulated_answers(site):
    quickstart = text_of(site / "examples" / "01-quickstart.html")
    assert "Simulated answer from gpt-4o-mini" in quickstart  # the streamed answer, rendered as Markdown
    assert re.search(r"gpt-4o-mini · chat · \d+ → \d+ tokens", quickstart)  # and its footer
    teaching = text_of(site / "examples" / "04-teaching-compare.html")
    assert "NameError" in teaching  # the student's cell fails on purpose (raises-exception) ...
    assert re.search(r"typo for values|value changed to values", teaching)  # ... and %aihubmix fix finds the typo
    data = text_of(site / "examples" / "03-data-exploration.html")
    assert re.search(r"Batch: 40 ok", data)  # batch() labelled the 40 reviews
    assert list((site / "_images").glob("*.png"))  # the matplotlib charts of 03 and 05


def test_api_reference_documents_the_public_names(site):
    api = (site / "api.html").read_text(encoding="utf-8")
    for name in ("Response", "Client", "Request", "batch", "BatchResults", "BatchSummary", "settings", "Settings",
                 "ModelInfo", "Tool", "ToolCall", "AihubmixError", "RateLimitError", "BudgetExceededError",
                 "BatchJob", "logs", "mcp_tools", "McpError", "AnswerTooLargeError"):
        assert f'id="aihubmix_magic.{name}"' in api, name
    assert 'id="aihubmix_magic._' not in api  # documented under the public names, not the private modules
    assert not any(f'id="aihubmix_magic.{layer}.' in api for layer in ("core", "net", "store", "services", "session",
                                                                       "notebook"))
    assert "ConfigurationError" in text_of(site / "api.html")  # the error tree from the errors module


def test_the_pictures_are_taken_by_the_browser_tests_and_shown(site):
    for picture in ("answer", "footer", "panel", "compare", "batch", "tool-approval"):
        assert (ROOT / "docs" / "_static" / "screenshots" / f"{picture}.png").exists(), picture
        assert (site / "_static" / "screenshots" / f"{picture}.png").exists(), picture
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/_static/screenshots/answer.png" in readme
    assert len(readme.encode()) <= 16 * 1024


def test_no_page_holds_a_key(site):
    leaked = [str(path.relative_to(site)) for path in site.rglob("*.html")
              if DEMO_KEY in path.read_text(encoding="utf-8") or re.search(r"sk-test-[0-9a-z]{20,}",
                                                                            path.read_text(encoding="utf-8"))]
    assert not leaked

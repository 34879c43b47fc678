"""End to end in a real browser: JupyterLab on loopback, driven by Playwright with Debian's chromium.

A notebook loads the extension, turns demo mode on, shows the control panel; the test picks another model
and endpoint in the panel with the mouse and keyboard, enters a key in the panel's password field, runs a
`%%aihubmix` cell, and checks what the page shows while the answer streams and once it is done.

The pictures in the documentation and the README are taken here, in real JupyterLab, and written to
docs/_static/screenshots/ (committed, so they change when the UI does): a streamed answer with its footer
(answer.png) and its end alone (footer.png), the control panel (panel.png), compare columns (compare.png), the tool approval prompt
(tool-approval.png), a batch's progress bar and summary (batch.png).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from aihubmix_magic.notebook.demo import DEMO_KEY

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
# Chromium's own background services (updates, accounts, autofill) go to a closed loopback port: only the
# JupyterLab server on loopback is reached
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--proxy-server=http://127.0.0.1:9",
                 "--proxy-bypass-list=127.0.0.1;localhost"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "_static" / "screenshots"
CANARY = "sk-canary-browser-4f7a9c2e1b8d6e3f"
KEY_PATTERN = re.compile(r"sk-[A-Za-z0-9_\-]{20,}")
CHOSEN_MODEL = "claude-haiku-4-5"
PROMPT = "Write a heading, then words=300, with bold text and a code block."
NOTEBOOK = "panel-test.ipynb"
COMPARE_MODELS = ("gpt-4o-mini", "gemini-2.5-flash", "deepseek-chat")
COMPARE_CELL = f"%%aihubmix --compare {','.join(COMPARE_MODELS)}\nwords=120 about sampling"
WAIT = 60_000  # ms: generous, for a loaded 2-core machine


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def jupyterlab(tmp_path):
    """JupyterLab from this venv, in a temporary root with a token; yields (base URL, token, root)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent (`bash .ci/setup` installs Debian's chromium)")
    root, home = tmp_path / "root", tmp_path / "jupyter"
    root.mkdir()
    notification = home / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(home / "settings"), JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
               JUPYTER_PLATFORM_DIRS="1")
    for name in ("AIHUBMIX_API_KEY", "AIHUBMIX_BASE_URL", "AIHUBMIX_MODEL"):  # the kernel starts with no key
        env.pop(name, None)
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.open_browser=False",
               "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.news_url=None",
               "--LabApp.extension_manager=readonly"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI containers run as root
        command.append("--allow-root")
    url = f"http://127.0.0.1:{port}"
    with open(tmp_path / "jupyterlab.log", "wb") as log:
        server = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        _wait_until_up(server, url, token, tmp_path / "jupyterlab.log")
        yield url, token, root
    finally:
        _shut_down(server, url, token)


def _wait_until_up(server: subprocess.Popen, url: str, token: str, log: Path) -> None:
    deadline = time.monotonic() + 90
    with httpx.Client(timeout=5) as client:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited with {server.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if client.get(f"{url}/api/status", params={"token": token}).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.25)
    pytest.fail(f"JupyterLab did not answer within 90 s:\n{log.read_text()[-3000:]}")


def _shut_down(server: subprocess.Popen, url: str, token: str) -> None:
    """Ask the server to stop (it shuts its kernels down), then make sure its process group is gone."""
    if server.poll() is None:
        try:
            with httpx.Client(timeout=10) as client:
                client.post(f"{url}/api/shutdown", headers={"Authorization": f"token {token}"})
        except httpx.HTTPError:
            pass
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    try:  # a kernel left behind by a crash is in the server's session
        os.killpg(server.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _create_notebook(url: str, token: str) -> None:
    notebook = {
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "cells": [{"cell_type": "code", "id": "first", "source": "", "metadata": {}, "outputs": [],
                   "execution_count": None}],
    }
    with httpx.Client(timeout=10) as client:
        reply = client.put(f"{url}/api/contents/{NOTEBOOK}", headers={"Authorization": f"token {token}"},
                           json={"type": "notebook", "format": "json", "content": notebook})
    reply.raise_for_status()


def _compare_columns_grow_together(page, cell, wait_done) -> None:
    """--compare: every column has grown on the page before any column has finished."""
    table = cell.locator(".jp-OutputArea table")
    page.wait_for_function("cell => cell.querySelector('.jp-OutputArea table') !== null",
                           arg=cell.element_handle())
    lengths: list[list[int]] = []  # per sample, the answer length shown in each column
    while True:
        rows = table.locator("tr")
        answers = [len(td.inner_text()) for td in rows.nth(1).locator("td").all()]
        footers = [td.inner_text() for td in rows.nth(2).locator("td").all()]
        if any(" · " in footer for footer in footers):  # a footer with the model's figures: it finished
            break
        lengths.append(answers)
        page.wait_for_timeout(50)
    wait_done(cell)
    assert len(lengths) >= 2 and len(lengths[0]) == len(COMPARE_MODELS), lengths
    grown = [lengths[-1][i] > lengths[0][i] for i in range(len(COMPARE_MODELS))]
    assert all(grown), f"columns seen growing before the first finished: {grown} ({lengths[0]} -> {lengths[-1]})"
    expect_models = cell.locator(".jp-OutputArea table th").all_inner_texts()
    assert tuple(text.strip() for text in expect_models) == COMPARE_MODELS


def _footer_picture(page, cell, output) -> None:
    """The end of the finished answer and its footer, as the README and the docs show them (footer.png)."""
    last = output.locator(".jp-OutputArea-child").last.bounding_box()
    code = output.locator("pre").last.bounding_box()  # the answer ends with a code block
    area = cell.bounding_box()
    top = code["y"] - 14
    page.screenshot(path=str(SCREENSHOTS / "footer.png"), clip={
        "x": area["x"], "y": top, "width": min(area["width"], 760), "height": last["y"] + last["height"] + 10 - top})


def _secrets_in(text: str) -> list[str]:
    found = [key for key in (DEMO_KEY, CANARY) if key in text]
    return found + KEY_PATTERN.findall(text)


def test_panel_and_streaming_in_jupyterlab(jupyterlab):
    from playwright.sync_api import expect, sync_playwright

    url, token, root = jupyterlab
    _create_notebook(url, token)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1500})
        page.set_default_timeout(WAIT)
        expect.set_options(timeout=WAIT)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1500})
            page.goto(f"{url}/lab/tree/{NOTEBOOK}?token={token}")
            cells = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell")
            expect(cells.first.locator(".cm-content")).to_be_visible()
            # a cell run before the kernel is connected is silently not executed: wait for it
            expect(page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"\| Idle"))).to_be_visible()
            page.keyboard.press("Control+b")  # fold the file browser away, for the screenshot

            def run(index: int, source: str):
                cell = cells.nth(index)
                cell.locator(".cm-content").click()
                page.keyboard.type(source)
                page.keyboard.press("Shift+Enter")
                return cell

            def wait_done(cell) -> None:
                expect(cell.locator(".jp-InputArea-prompt")).to_have_text(re.compile(r"\[\d+\]"))

            wait_done(run(0, "%load_ext aihubmix_magic"))
            demo = run(1, "%aihubmix demo")
            wait_done(demo)
            expect(demo.locator(".jp-OutputArea")).to_contain_text("Demo mode")
            wait_done(run(2, "%aihubmix panel"))

            panel = page.locator(".aihubmix-panel")
            expect(panel).to_be_visible()
            expect(panel.locator(".aihubmix-models-note")).to_contain_text("models")
            expect(panel.locator(".aihubmix-status")).to_contain_text("demo mode")
            # pick another model: the mouse into the search field, the keyboard for the name
            model_input = panel.locator(".aihubmix-model input")
            model_input.click()
            page.keyboard.press("Control+a")
            page.keyboard.type(CHOSEN_MODEL)
            page.keyboard.press("Enter")
            # and the responses endpoint with the mouse
            panel.locator("button", has_text="responses").click()
            expect(panel.locator("button.mod-active", has_text="responses")).to_have_count(1)
            # a key through the password field: the kernel takes it and clears the field
            key_input = panel.locator(".aihubmix-key input")
            key_input.click()
            page.keyboard.type(CANARY)
            page.keyboard.press("Enter")
            expect(key_input).to_have_value("")
            expect(panel.locator(".aihubmix-models-note")).to_contain_text("models")  # fetched with the new key

            answer = run(3, "%%aihubmix\n" + PROMPT)
            output = answer.locator(".jp-OutputArea")
            prompt = answer.locator(".jp-InputArea-prompt")
            expect(prompt).to_have_text(re.compile(r"\[\*\]"))
            seen: list[str] = []  # distinct output texts seen before the answer ended
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                running = "*" in prompt.inner_text()
                text = output.inner_text() if output.count() else ""
                if not running:
                    break
                before_the_end = f"{CHOSEN_MODEL} · " not in text  # the footer comes last
                if text.strip() and before_the_end and (not seen or text != seen[-1]):
                    seen.append(text)
                page.wait_for_timeout(100)
            wait_done(answer)
            assert len(seen) >= 2, f"the output was seen {len(seen)} time(s) while streaming"
            assert len(seen[-1]) > len(seen[0]), "the output did not grow while the answer streamed"
            print(f"output seen {len(seen)} times while streaming, {len(seen[0])} to {len(seen[-1])} characters")

            # the final rendering: a heading, bold text, a code block, and the footer naming the model
            expect(output.locator("h2")).to_have_count(1)
            expect(output.locator("strong").first).to_contain_text("bold text")
            expect(output.locator("pre code, code").first).to_be_visible()
            footer = output.locator(".jp-OutputArea-child").last.inner_text().strip()
            assert footer.startswith(CHOSEN_MODEL + " · responses · "), footer
            assert re.search(r" tokens · (≈ \$\d+\.\d{4}|< \$0\.0001) · ", footer), footer  # what it cost
            _footer_picture(page, answer, output)
            answer.screenshot(path=str(SCREENSHOTS / "answer.png"))  # the whole answer, for the README
            expect(panel.locator(".aihubmix-status")).to_contain_text(f"last call: {CHOSEN_MODEL} · responses")

            page.keyboard.press("Escape")
            page.keyboard.press("Control+s")
            panel.scroll_into_view_if_needed()
            page.screenshot(path=str(SCREENSHOTS / "panel.png"))

            compare = run(4, COMPARE_CELL)
            _compare_columns_grow_together(page, compare, wait_done)
            compare.scroll_into_view_if_needed()
            compare.screenshot(path=str(SCREENSHOTS / "compare.png"))

            page_text = page.locator("body").inner_text() + page.content() + "\n".join(page.evaluate(
                "() => Array.from(document.querySelectorAll('input, textarea')).map(e => e.value)"))
            assert _secrets_in(page_text) == []
        except BaseException:
            page.screenshot(path=str(ARTIFACTS / "panel-failure.png"))  # to see what went wrong
            raise
        finally:
            browser.close()

    saved = root / NOTEBOOK
    deadline = time.monotonic() + 30
    while CHOSEN_MODEL + " · responses" not in saved.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    text = saved.read_text()
    assert CHOSEN_MODEL + " · responses" in text, "the notebook was not saved with the answer"
    assert _secrets_in(text) == []


TOOLS_NOTEBOOK = "tools-test.ipynb"
TOOLS_CELLS = [
    "%load_ext aihubmix_magic\n%aihubmix demo",
    "def get_weather(city: str) -> str:\n    '''The weather in a city now.'''\n    return f'sunny in {city}, 21C'",
    "%%aihubmix --tools get_weather\nWhat is the weather in Paris?",
    "print('approved:', last_response().steps[0].calls[0].approved)",
]


def test_tool_approval_buttons_in_jupyterlab(jupyterlab):
    """A `--tools` cell waits for the Run button while the cell queued after it waits its turn; the click
    runs the tool, the step shows above the answer, and the next cell runs after."""
    from playwright.sync_api import expect, sync_playwright

    url, token, root = jupyterlab
    cells_json = [{"cell_type": "code", "id": f"c{number}", "source": source, "metadata": {}, "outputs": [],
                   "execution_count": None} for number, source in enumerate(TOOLS_CELLS)]
    notebook = {"nbformat": 4, "nbformat_minor": 5, "cells": cells_json,
                "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}}
    with httpx.Client(timeout=10) as client:
        client.put(f"{url}/api/contents/{TOOLS_NOTEBOOK}", headers={"Authorization": f"token {token}"},
                   json={"type": "notebook", "format": "json", "content": notebook}).raise_for_status()
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1200})
        page.set_default_timeout(WAIT)
        expect.set_options(timeout=WAIT)
        try:
            page.goto(f"{url}/lab/tree/{TOOLS_NOTEBOOK}?token={token}")
            cells = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell")
            expect(cells.first.locator(".cm-content")).to_be_visible()
            expect(page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"\| Idle"))).to_be_visible()
            page.keyboard.press("Control+b")
            cells.first.locator(".cm-content").click()
            for _ in TOOLS_CELLS:  # run every cell: the last one is queued behind the prompt
                page.keyboard.press("Shift+Enter")
            prompt = page.locator(".aihubmix-approval")
            expect(prompt).to_be_visible()
            expect(prompt).to_contain_text("get_weather(city='Paris')")
            expect(cells.nth(3).locator(".jp-InputArea-prompt")).to_have_text(re.compile(r"\[\*\]"))
            cells.nth(2).screenshot(path=str(SCREENSHOTS / "tool-approval.png"))
            prompt.locator("button", has_text="Run").first.click()
            tool_cell = cells.nth(2).locator(".jp-OutputArea")
            expect(tool_cell).to_contain_text("Step 1 · get_weather(city='Paris') → sunny in Paris, 21C")
            expect(tool_cell).to_contain_text("The tool returned: sunny in Paris, 21C")
            expect(tool_cell).to_contain_text("1 step · 1 tool call")
            expect(page.locator(".aihubmix-approval")).to_have_count(0)
            expect(cells.nth(3).locator(".jp-OutputArea")).to_contain_text("approved: True")
            page.screenshot(path=str(ARTIFACTS / "tools.png"))
        except BaseException:
            page.screenshot(path=str(ARTIFACTS / "tools-failure.png"))
            raise
        finally:
            browser.close()


BATCH_NOTEBOOK = "batch-test.ipynb"
BATCH_TOPICS = ["recursion", "a p-value", "gradient descent", "a hash table", "entropy", "overfitting"]
BATCH_CELLS = [
    "%load_ext aihubmix_magic\n%aihubmix demo",
    f"topics = {BATCH_TOPICS!r}",
    "%%aihubmix --over topics -m gpt-4o-mini -o answers\nExplain {} in one sentence.",
]


def test_batch_progress_and_summary_in_jupyterlab(jupyterlab):
    """`--over` in JupyterLab: the progress bar (a widget) fills, the summary line and the table of answers
    follow; the cell is photographed for the documentation (batch.png)."""
    from playwright.sync_api import expect, sync_playwright

    url, token, root = jupyterlab
    cells_json = [{"cell_type": "code", "id": f"b{number}", "source": source, "metadata": {}, "outputs": [],
                   "execution_count": None} for number, source in enumerate(BATCH_CELLS)]
    notebook = {"nbformat": 4, "nbformat_minor": 5, "cells": cells_json,
                "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}}
    with httpx.Client(timeout=10) as client:
        client.put(f"{url}/api/contents/{BATCH_NOTEBOOK}", headers={"Authorization": f"token {token}"},
                   json={"type": "notebook", "format": "json", "content": notebook}).raise_for_status()
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1200})
        page.set_default_timeout(WAIT)
        expect.set_options(timeout=WAIT)
        try:
            page.goto(f"{url}/lab/tree/{BATCH_NOTEBOOK}?token={token}")
            cells = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell")
            expect(cells.first.locator(".cm-content")).to_be_visible()
            expect(page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"\| Idle"))).to_be_visible()
            page.keyboard.press("Control+b")
            cells.first.locator(".cm-content").click()
            for _ in BATCH_CELLS:
                page.keyboard.press("Shift+Enter")
            batch_cell = cells.nth(2)
            expect(batch_cell.locator(".jp-InputArea-prompt")).to_have_text(re.compile(r"\[\d+\]"))
            output = batch_cell.locator(".jp-OutputArea")
            expect(output.locator(".jupyter-widgets").first).to_be_visible()  # the bar, a widget, stays
            expect(output).to_contain_text(f"{len(BATCH_TOPICS)}/{len(BATCH_TOPICS)}")
            expect(output).to_contain_text(f"Batch: {len(BATCH_TOPICS)} ok")
            for topic in BATCH_TOPICS:  # the table: an answer per item
                expect(output.locator("table")).to_contain_text(topic)
            batch_cell.scroll_into_view_if_needed()
            batch_cell.screenshot(path=str(SCREENSHOTS / "batch.png"))
        except BaseException:
            page.screenshot(path=str(ARTIFACTS / "batch-failure.png"))
            raise
        finally:
            browser.close()


SHOWN_NOTEBOOK = "shown-test.ipynb"
LONG_REVIEW = ("crisp, sweet and perfectly ripe, the best pears we have had this year; they cost $4 a box at "
               "the market and $6 in the shop, and every one of them was worth it, even the small ones that "
               "looked a little green when they arrived on Tuesday")
assert len(LONG_REVIEW) > 200  # the table cuts it: the whole text is on hover
REVIEWS = ["bitter and tough, a waste of money", LONG_REVIEW, "arrived bruised and soft",
           "delicious and juicy, will buy again", "fine, nothing special"]
SHOWN_CELLS = {  # name: source; every output of these cells is checked for MathJax
    "setup": "%load_ext aihubmix_magic\n%aihubmix demo\n%aihubmix budget 0.5",
    "answer": "%%aihubmix -m claude-sonnet-4-5\nwords=20 about pears",
    "cost": "%aihubmix cost",
    "frame": f"import pandas as pd\ndf = pd.DataFrame({{'review': {REVIEWS!r}}})",
    "estimate": "%%aihubmix --over df.review --estimate\nIs this review positive, neutral or negative? Answer with "
                "one word. Review: {}",
    "batch": "%%aihubmix --over df.review\nIs this review positive, neutral or negative? Answer with one word. "
             "Review: {}",
    "models": "%aihubmix models claude",
    "compare": "%%aihubmix --compare gpt-4o-mini,claude-sonnet-4-5\nwords=15 about plums",
    "panel": "%aihubmix panel",
    "tool": "def get_weather(city: str) -> str:\n    '''The weather in a city now.'''\n    return f'sunny in {city}'",
    "ask": "%%aihubmix --tools get_weather\nWhat is the weather in Paris?",
    "control": "from IPython.display import Markdown\nMarkdown('math still works: $x^2$')",  # MathJax is on
}
MATH = "mjx-container, .MathJax, .MathJax_Preview, mjx-math"
MONEY = (("answer", r"≈ \$0\.\d{4}"), ("cost", r"Budget \$0\.50: ≈ \$0\.\d+ left"),
         ("estimate", r"→ ≈ \$0\.\d+\. The session budget has ≈ \$0\.\d+ left"),
         ("models", r"\$3\.00\s+\$15\.00"), ("compare", r"[≈<] \$0\.\d{4}[^$]+[≈<] \$0\.\d{4}"),
         ("panel", r"Budget \$0\.50 · spent ≈ \$0\.\d+"))


def _shown_notebook(url: str, token: str, name: str, cells: list[str]) -> None:
    """A notebook of the SHOWN_CELLS named, put on the server."""
    cells_json = [{"cell_type": "code", "id": cell, "source": SHOWN_CELLS[cell], "metadata": {}, "outputs": [],
                   "execution_count": None} for cell in cells]
    notebook = {"nbformat": 4, "nbformat_minor": 5, "cells": cells_json,
                "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}}
    with httpx.Client(timeout=10) as client:
        client.put(f"{url}/api/contents/{name}", headers={"Authorization": f"token {token}"},
                   json={"type": "notebook", "format": "json", "content": notebook}).raise_for_status()


def _money_is_text(output, names: list[str]) -> None:
    """With the budget set, the money outputs have two `$` or more: each reads as text, and no output of
    any cell holds a MathJax element (two `$` in one output would open a formula)."""
    expect_budget = output("setup").inner_text()
    assert "Budget $0.50" in expect_budget, expect_budget
    for name, pattern in MONEY:
        if name in names:
            text = output(name).inner_text()
            assert re.search(pattern, text), f"{name}: {text[-600:]}"
    for name in names:
        math = output(name).locator(MATH)
        if name == "control":  # real math is typeset: the check below would see MathJax in our outputs
            assert math.count() >= 1, f"no MathJax for real math: {output(name).inner_html()[:500]}"
        else:
            assert math.count() == 0, f"{name}: MathJax in {output(name).inner_html()[:1500]}"


def test_money_batch_items_model_ids_and_an_unanswered_prompt_in_jupyterlab(jupyterlab):
    """What a person sees: every `$` amount (footer, cost, budget, estimate, models table, compare, panel)
    is text, not MathJax; the batch table shows each review beside its label (a long one cut, whole on
    hover); model ids stay on one line; an approval left unanswered says what to do after 20 s."""
    from playwright.sync_api import expect, sync_playwright

    url, token, root = jupyterlab
    names = list(SHOWN_CELLS)
    _shown_notebook(url, token, SHOWN_NOTEBOOK, names)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 1400})
        page.set_default_timeout(WAIT)
        expect.set_options(timeout=WAIT)
        try:
            page.goto(f"{url}/lab/tree/{SHOWN_NOTEBOOK}?token={token}")
            cells = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell")
            expect(cells.first.locator(".cm-content")).to_be_visible()
            expect(page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"\| Idle"))).to_be_visible()
            page.keyboard.press("Control+b")
            cells.first.locator(".cm-content").click()
            for _ in names:
                page.keyboard.press("Shift+Enter")

            def cell(name: str):
                return cells.nth(names.index(name))

            def output(name: str):
                return cell(name).locator(".jp-OutputArea")

            # 4: the approval prompt nobody answers: after 20 s one line under the buttons says what to do
            prompt = page.locator(".aihubmix-approval")
            expect(prompt).to_be_visible()
            shown_at = time.monotonic()
            hint = output("ask").locator(".aihubmix-approval-hint")
            expect(hint).to_be_visible(timeout=40_000)
            waited = time.monotonic() - shown_at
            assert 15 < waited < 35, f"the hint came after {waited:.1f} s"
            expect(hint).to_contain_text("interrupt the kernel (■) and run the cell again with --yes")
            expect(hint).to_contain_text("reload the page")
            hint_box, buttons_box = hint.bounding_box(), prompt.bounding_box()
            assert hint_box["y"] >= buttons_box["y"] + buttons_box["height"] - 1, "the hint is under the buttons"
            page.screenshot(path=str(ARTIFACTS / "approval-hint.png"))
            prompt.locator("button", has_text="Run").first.click()  # the buttons still work after the hint
            expect(output("ask")).to_contain_text("get_weather(city='Paris') → sunny in Paris")
            expect(hint).to_have_count(0)
            expect(cell("ask").locator(".jp-InputArea-prompt")).to_have_text(re.compile(r"\[\d+\]"))
            expect(cell("control").locator(".jp-InputArea-prompt")).to_have_text(re.compile(r"\[\d+\]"))
            page.wait_for_timeout(1500)  # MathJax typesets after a render

            _money_is_text(output, names)

            # 2: the batch table: the review beside its label, the long one cut with the whole on hover
            table = output("batch").locator("table")
            assert [h.strip() for h in table.locator("th").all_inner_texts()] == ["", "review", "answer", "status"]
            rows = table.locator("tbody tr")
            expect(rows).to_have_count(len(REVIEWS))
            for number, review in enumerate(REVIEWS):
                cells_text = rows.nth(number).locator("td").all_inner_texts()
                assert cells_text[0].strip() == str(number) and cells_text[3].strip() == "completed"
                if review is LONG_REVIEW:
                    assert cells_text[1].endswith("…") and LONG_REVIEW.startswith(cells_text[1][:-1])
                    assert rows.nth(number).locator("td").nth(1).locator("span[title]").get_attribute(
                        "title") == LONG_REVIEW
                else:
                    assert cells_text[1] == review
            labels = [rows.nth(n).locator("td").nth(2).inner_text().strip() for n in range(len(REVIEWS))]
            assert labels == ["negative", "positive", "negative", "positive", "neutral"], labels  # from the item

            # 5: model ids on one line in the models table (a wrapped inline element has several boxes)
            ids = output("models").locator("td code")
            assert ids.count() >= 3
            for index in range(ids.count()):
                code = ids.nth(index)
                lines = code.evaluate("e => e.getClientRects().length")
                assert lines == 1, f"{code.inner_text()} wraps over {lines} lines"
            output("models").scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "shown.png"), full_page=True)
        except BaseException:
            page.screenshot(path=str(ARTIFACTS / "shown-failure.png"), full_page=True)
            raise
        finally:
            browser.close()


NOTEBOOK7_CELLS = ["setup", "answer", "cost", "frame", "estimate", "models", "compare", "control"]


def test_money_is_text_in_notebook_7(jupyterlab):
    """The same money outputs in Notebook 7 (its own page, the same renderers as JupyterLab): no MathJax."""
    pytest.importorskip("notebook", minversion="7")
    from playwright.sync_api import expect, sync_playwright

    url, token, root = jupyterlab
    # every cell in the page (Notebook 7 attaches only the cells in view by default)
    tracker = root.parent / "jupyter" / "settings" / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True, exist_ok=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))
    _shown_notebook(url, token, SHOWN_NOTEBOOK, NOTEBOOK7_CELLS)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 1400})
        page.set_default_timeout(WAIT)
        expect.set_options(timeout=WAIT)
        try:
            page.goto(f"{url}/notebooks/{SHOWN_NOTEBOOK}?token={token}")
            cells = page.locator(".jp-Notebook .jp-Cell")
            expect(cells).to_have_count(len(NOTEBOOK7_CELLS))
            first = cells.first.locator(".jp-InputArea-prompt")
            for _ in range(10):  # Run All before the kernel is connected runs nothing: try again
                page.locator(".lm-MenuBar-itemLabel", has_text="Run").click()
                page.locator(".lm-Menu-itemLabel").get_by_text("Run All Cells", exact=True).click()
                try:
                    expect(first).to_have_text(re.compile(r"\[[\d*]+\]"), timeout=10_000)
                    break
                except AssertionError:
                    continue
            last = cells.nth(len(NOTEBOOK7_CELLS) - 1)
            expect(last.locator(".jp-InputArea-prompt")).to_have_text(re.compile(r"\[\d+\]"))
            expect(last.locator(".jp-OutputArea")).to_contain_text("math still works")
            page.wait_for_timeout(1500)  # MathJax typesets after a render

            def output(name: str):
                return cells.nth(NOTEBOOK7_CELLS.index(name)).locator(".jp-OutputArea")

            _money_is_text(output, NOTEBOOK7_CELLS)
            page.screenshot(path=str(ARTIFACTS / "notebook7.png"), full_page=True)
        except BaseException:
            page.screenshot(path=str(ARTIFACTS / "notebook7-failure.png"), full_page=True)
            raise
        finally:
            browser.close()

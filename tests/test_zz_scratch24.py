import json, re, httpx
from tests.test_browser import jupyterlab, CHROMIUM, CHROMIUM_ARGS, WAIT  # noqa

CELLS = [
 "from IPython.display import display, Markdown, HTML",
 "display({'text/markdown': 'A1 costs &#36;0.5 and &#36;1.2 total'}, raw=True)",
 "display({'text/markdown': 'A2 costs \\\\$0.5 and \\\\$1.2 total'}, raw=True)",
 "display({'text/markdown': 'A3 costs <span>&#36;</span>0.5 and <span>&#36;</span>1.2 total'}, raw=True)",
 "display({'text/markdown': '| a | b |\\n|---|---|\\n| \\\\$0.5 | \\\\$1.2 |'}, raw=True)",
 "display({'text/markdown': '<sub>A5 costs \\\\$0.5 and \\\\$1.2 total</sub>'}, raw=True)",
 "display({'text/markdown': '<sub>A6 costs <span>&#36;</span>0.5 and <span>&#36;</span>1.2 total</sub>'}, raw=True)",
 "display({'text/markdown': '`A7 \\\\$0.5` and `$1.2`'}, raw=True)",
 "display({'text/html': 'A8 costs $0.5 and $1.2 total'}, raw=True)",
 "import ipywidgets as w; display(w.Label('A9 costs $0.5 and $1.2'), w.HTML('A10 costs $0.5 and $1.2'))",
 "display({'text/markdown': '| a | b |\\n|---|---|\\n| <span>&#36;</span>0.5 | <span>&#36;</span>1.2 |'}, raw=True)",
 "display({'text/markdown': 'A12 costs &#36;0.5 and <span>&#36;</span>1.2 total'}, raw=True)",
]

def test_scratch(jupyterlab):
    from playwright.sync_api import expect, sync_playwright
    url, token, root = jupyterlab
    cells_json = [{"cell_type": "code", "id": f"c{n}", "source": s, "metadata": {}, "outputs": [], "execution_count": None} for n, s in enumerate(CELLS)]
    nb = {"nbformat": 4, "nbformat_minor": 5, "cells": cells_json, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}}
    with httpx.Client(timeout=10) as c:
        c.put(f"{url}/api/contents/s.ipynb", headers={"Authorization": f"token {token}"}, json={"type": "notebook", "format": "json", "content": nb}).raise_for_status()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = b.new_page(viewport={"width": 1280, "height": 2000})
        page.set_default_timeout(WAIT); expect.set_options(timeout=WAIT)
        page.goto(f"{url}/lab/tree/s.ipynb?token={token}")
        cells = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell")
        expect(cells.first.locator(".cm-content")).to_be_visible()
        expect(page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"\| Idle"))).to_be_visible()
        cells.first.locator(".cm-content").click()
        page.keyboard.press("Control+Enter")
        page.locator("text=Run").first  # noop
        for _ in CELLS:
            page.keyboard.press("Shift+Enter")
        expect(cells.nth(len(CELLS)-1).locator(".jp-InputArea-prompt")).to_have_text(re.compile(r"\[\d+\]"))
        page.wait_for_timeout(4000)
        for i in range(len(CELLS)):
            out = cells.nth(i).locator(".jp-OutputArea")
            print(i, repr(out.inner_text()[:100]), "MATH" if out.locator("mjx-container, .MathJax").count() else "ok")
        page.screenshot(path="/tmp/exp24/s.png")
        b.close()

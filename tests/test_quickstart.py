"""The quickstart notebook in a real kernel (nbclient), in demo mode: no key, no network."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    nb = nbformat.read(EXAMPLES / "01-quickstart.ipynb", as_version=4)
    env_saved = {k: os.environ.pop(k) for k in ("AIHUBMIX_API_KEY", "AIHUBMIX_BASE_URL") if k in os.environ}
    try:
        NotebookClient(nb, timeout=120, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path_factory.mktemp("nb"))}}).execute()
    finally:
        os.environ.update(env_saved)
    return nb


def outputs_of(cell) -> list[dict]:
    return cell.get("outputs", [])


def markdown(cell) -> list[str]:
    return [o["data"]["text/markdown"] for o in outputs_of(cell) if o.get("data", {}).get("text/markdown")]


@pytest.mark.kernel
def test_quickstart_runs_in_demo_mode_and_streams_answers(executed):
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert not [o for c in code for o in outputs_of(c) if o.output_type == "error"]
    setup = "".join(o.get("text", "") for o in outputs_of(code[0]))
    assert "Demo mode" in setup and "simulated" in setup
    prompt_cells = [c for c in code if c.source.startswith("%%aihubmix")]
    assert len(prompt_cells) == 3
    for cell in prompt_cells:
        answer, footer = markdown(cell)
        assert answer.strip() and "Simulated answer" in answer
        assert footer.startswith("<sub>") and " · " in footer and "simulated" in footer
    first_answer = markdown(prompt_cells[0])[0]
    assert first_answer.startswith("## ") and "**" in first_answer and "```python" in first_answer
    # the answer as a Python object: printed fields
    printed = "".join(o.get("text", "") for o in outputs_of(code[2]))
    assert "gpt-4o-mini chat completed stop" in printed and "input_tokens=" in printed
    # the token limit cell says it stopped early, and --out stored the Response
    assert "stopped early" in markdown(prompt_cells[1])[1]
    assert "('incomplete', 'length', 25)" in code[4].outputs[0]["data"]["text/plain"]
    # the last cell used the model chosen with `%aihubmix use`
    assert "claude-sonnet-4-5 · chat" in markdown(prompt_cells[2])[1]


@pytest.mark.kernel
def test_quickstart_saved_notebook_holds_one_rendering_per_answer(executed, tmp_path):
    path = tmp_path / "out.ipynb"
    nbformat.write(executed, path)
    nbformat.validate(nbformat.read(path, as_version=4))
    text = path.read_text()
    assert "sk-demo-simulated-answers" not in text
    prompt_cells = [c for c in executed.cells if c.cell_type == "code" and c.source.startswith("%%aihubmix")]
    assert all(len(c.outputs) == 2 for c in prompt_cells), "one Markdown answer and one footer per cell"

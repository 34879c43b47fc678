"""Every example notebook, run top to bottom in a real kernel (nbclient) in demo mode: no key, no network.

Checks: no cell errors (but in the cells tagged `raises-exception`, which must fail: they show
`%aihubmix fix` at work), every prompt cell shows an answer, the simulator answered (the demo marks),
and the executed notebook holds no key.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("[0-9][0-9]-*.ipynb"))
DEMO_KEY = "sk-demo-simulated-answers"
SHOWN = ("text/markdown", "text/html", "text/plain", "application/json")


def test_every_example_is_collected():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06"]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A copy of examples/ (the notebooks read data/), and a kernel environment without any key."""
    for name in ("AIHUBMIX_API_KEY", "AIHUBMIX_BASE_URL", "AIHUBMIX_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIHUBMIX_CACHE_PATH", str(tmp_path / "cache" / "responses.sqlite"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    shutil.copytree(EXAMPLES / "data", tmp_path / "data")
    shutil.copy(EXAMPLES / "reviews_server.py", tmp_path)  # the MCP server of 06-tools
    return tmp_path


def texts(output) -> list[str]:
    if output.output_type == "stream":
        return [output.text]
    data = output.get("data", {})
    return [str(data[kind]) for kind in SHOWN if kind in data]


@pytest.mark.kernel
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_example_runs_offline_in_demo_mode(path, workdir):
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit examples without outputs"
    assert nb.cells[1].source.startswith("%load_ext aihubmix_magic\n%aihubmix demo auto")
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(workdir)}}).execute()

    code = [c for c in nb.cells if c.cell_type == "code"]
    failing = [c for c in code if "raises-exception" in c.metadata.get("tags", [])]
    errors = [(c.source.split("\n")[0], o.get("ename"), o.get("evalue")) for c in code for o in c.outputs
              if o.output_type == "error" and c not in failing]
    assert not errors
    assert all(any(o.output_type == "error" for o in c.outputs) for c in failing)
    assert "Demo mode" in "".join(t for o in code[0].outputs for t in texts(o))

    prompt_cells = [c for c in code if c.source.startswith(("%%aihubmix", "%aihubmix fix", "%aihubmix -p"))]
    assert prompt_cells
    for cell in prompt_cells:
        shown = [t for o in cell.outputs if o.output_type in ("display_data", "execute_result") for t in texts(o)]
        assert any(t.strip() for t in shown), f"no answer under {cell.source.splitlines()[0]!r}"
        everything = "\n".join(t for o in cell.outputs for t in texts(o))
        assert "imulated" in everything, f"not answered by the simulator: {cell.source.splitlines()[0]!r}"

    saved = nbformat.writes(nb)
    assert DEMO_KEY not in saved
    nbformat.validate(nbformat.reads(saved, as_version=4))

"""Notebook export: `export_notebook(responses, path)` and `%aihubmix export`, against the simulator."""

from __future__ import annotations

import subprocess
import sys

import nbformat
import pytest
from IPython.core.error import UsageError

import aihubmix_magic
from aihubmix_magic import AuthenticationError, export_notebook, history, last_response, settings
from aihubmix_magic.session import state as _session

CANARY = "sk-canary-DO-NOT-LEAK-7f3a9c1e5b"

CELLS = [  # (magic line options, prompt)
    ("-m gpt-4o-mini", "Explain a p-value with a heading, bold text and a code example."),
    ('-m claude-haiku-4-5 -s "You are terse; say \\"hi\\" first." -t 0.2 --top-p 0.5 --max-tokens 30',
     "Name three sorting algorithms."),
    ('-e responses -m gpt-4o -s "Answer in one paragraph." --no-stream', "What is the central limit theorem?"),
    ("-e responses -m o4-mini -r low", "Why is the sky blue?\nAnswer with a list."),
]


def run_cells(ip) -> list:
    start = len(history())
    for line, prompt in CELLS:
        ip.run_cell_magic("aihubmix", line, prompt)
    return history()[start:]


def code_cells(nb) -> list:
    return [cell for cell in nb.cells if cell.cell_type == "code"][1:]  # the first one loads the extension


def test_round_trip_reproduces_every_request(ip, sim, tmp_path):
    originals = run_cells(ip)
    path = export_notebook(originals, tmp_path / "session.ipynb")
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    cells = code_cells(nb)
    assert len(cells) == len(originals)
    assert nb.cells[1].source == "%load_ext aihubmix_magic\n%aihubmix demo auto"
    # running the exported cells sends exactly the same requests again
    for cell, original in zip(cells, originals, strict=True):
        line, _, prompt = cell.source.partition("\n")
        assert line.startswith("%%aihubmix ")
        ip.run_cell(cell.source)
        again = last_response()
        assert again is not original
        assert again.request == original.request, cell.source
        assert again.text == original.text


def test_cells_hold_the_prompt_the_answer_and_the_metadata(ip, sim, tmp_path):
    originals = run_cells(ip)
    nb = nbformat.read(export_notebook(originals, tmp_path / "out.ipynb"), as_version=4)
    for cell, (_options, prompt), response in zip(code_cells(nb), CELLS, originals, strict=True):
        assert cell.source.split("\n", 1)[1] == prompt
        markdown = [o.data["text/markdown"] for o in cell.outputs if o.output_type == "display_data"]
        assert response.text in markdown
        assert markdown[-1].startswith(f"<sub>{response.model} · {response.endpoint} · ")  # the footer
        meta = cell.metadata["aihubmix"]
        assert meta["model"] == response.model and meta["endpoint"] == response.endpoint
        assert meta["status"] == response.status and meta["id"] == response.id
        assert meta["finish_reason"] == response.finish_reason
        assert meta["usage"]["input_tokens"] == response.usage.input_tokens > 0
        assert meta["usage"]["output_tokens"] == response.usage.output_tokens > 0
        assert meta["elapsed"] == pytest.approx(response.elapsed, abs=1e-3)
        assert meta["time_to_first_token"] == pytest.approx(response.time_to_first_token, abs=1e-3)
        assert meta["stream"] == response.stream
    assert [cell.metadata["aihubmix"]["status"] for cell in code_cells(nb)][:2] == ["completed", "incomplete"]
    reasoning = code_cells(nb)[3]
    assert reasoning.metadata["aihubmix"]["usage"]["reasoning_tokens"] > 0
    assert reasoning.outputs[0].data["text/markdown"].startswith("<details><summary>Reasoning</summary>")
    assert " -r low" in reasoning.source.split("\n")[0]


def test_magic_line_quotes_options(ip, sim, tmp_path):
    originals = run_cells(ip)
    nb = nbformat.read(export_notebook(originals, tmp_path / "out.ipynb"), as_version=4)
    lines = [cell.source.split("\n")[0] for cell in code_cells(nb)]
    assert lines[0] == "%%aihubmix -m gpt-4o-mini -e chat"
    assert lines[1] == ('%%aihubmix -m claude-haiku-4-5 -e chat -s "You are terse; say \\"hi\\" first." '
                        "-t 0.2 --top-p 0.5 --max-tokens 30")
    assert lines[2] == '%%aihubmix -m gpt-4o -e responses -s "Answer in one paragraph." --no-stream'


def test_canary_key_never_reaches_the_file(ip, sim, tmp_path):
    settings.set_key(CANARY)
    ip.run_cell_magic("aihubmix", "-m gpt-4o-mini", "Say hello, with a table.")
    ip.run_cell_magic("aihubmix", "-e responses -m gpt-4o-mini", "Say hello again.")
    with pytest.raises(AuthenticationError):  # a failed call is exported too, with its (scrubbed) error
        ip.run_cell_magic("aihubmix", "-m sim-401", "This key is refused.")
    assert sim.requests[-1].headers.get("authorization") == f"Bearer {CANARY}"  # it was really used
    ip.run_line_magic("aihubmix", f"export {tmp_path / 'canary.ipynb'}")
    data = (tmp_path / "canary.ipynb").read_bytes()
    assert CANARY.encode() not in data and CANARY[-12:].encode() not in data
    nb = nbformat.reads(data.decode(), as_version=4)
    nbformat.validate(nb)
    failed = code_cells(nb)[-1].metadata["aihubmix"]
    assert failed["status"] == "failed" and failed["error"]["type"] == "AuthenticationError"


def test_refuses_to_write_a_key_it_finds(tmp_path):
    from aihubmix_magic import Response

    leaky = Response(endpoint="chat", request={"model": "m", "messages": [{"role": "user", "content": CANARY}]})
    with pytest.raises(ValueError, match="API key"):
        export_notebook_with_key([leaky], tmp_path / "x.ipynb", CANARY)
    assert not (tmp_path / "x.ipynb").exists()


def export_notebook_with_key(responses, path, key):
    from aihubmix_magic.notebook.export import export_notebook as export

    return export(responses, path, api_key=key)


def test_export_magic_writes_the_whole_session(ip, sim, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(_session.current(), "history", [])
    ip.run_cell_magic("aihubmix", "-m gpt-4o-mini", "one")
    ip.run_cell_magic("aihubmix", "-m gpt-4o-mini", "two")
    target = tmp_path / "with space" / "all.ipynb"
    target.parent.mkdir()
    capsys.readouterr()
    ip.run_line_magic("aihubmix", f'export "{target}"')
    assert f"Exported 2 answers to {target}" in capsys.readouterr().out
    nb = nbformat.read(target, as_version=4)
    assert [cell.source.split("\n")[1] for cell in code_cells(nb)] == ["one", "two"]
    assert nb.metadata["aihubmix"]["answers"] == 2


@pytest.mark.parametrize(("line", "message"), [
    ("export", "Usage: %aihubmix export FILE.ipynb"),
    ("export a.ipynb b.ipynb", "Usage: %aihubmix export FILE.ipynb"),
    ("export notes.txt", "must end in .ipynb"),
    ("export /no/such/folder/x.ipynb", "does not exist"),
    ('export "unclosed.ipynb', "Usage"),
])
def test_export_magic_usage_errors(ip, sim, line, message):
    ip.run_cell_magic("aihubmix", "-m gpt-4o-mini", "something to export")
    with pytest.raises(UsageError, match=message) as caught:
        ip.run_line_magic("aihubmix", line)
    assert "\n" not in str(caught.value)


def test_export_magic_without_answers(ip, tmp_path, monkeypatch):
    monkeypatch.setattr(_session.current(), "history", [])
    with pytest.raises(UsageError, match="no answers to export yet"):
        ip.run_line_magic("aihubmix", f"export {tmp_path / 'empty.ipynb'}")
    assert not (tmp_path / "empty.ipynb").exists()


def test_export_accepts_a_generator_and_rejects_other_objects(ip, sim, tmp_path):
    ip.run_cell_magic("aihubmix", "-m gpt-4o-mini", "hello")
    path = aihubmix_magic.export_notebook((r for r in [last_response()]), str(tmp_path / "g.ipynb"))
    assert path.exists()
    with pytest.raises(TypeError, match="expected Response"):
        export_notebook(["not a response"], tmp_path / "bad.ipynb")


def test_import_stays_light():
    code = ("import sys, aihubmix_magic; "
            "print([m for m in ('nbformat', 'ipywidgets', 'pandas') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    code = "import sys, aihubmix_magic.notebook.export; print('IPython' in sys.modules, 'ipywidgets' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False False"


# -- with the features of conversations, formats, images and templates ------------------------------------
def replay(ip, nb) -> list:
    """Run the exported cells (after the set-up cell) in the shell; the new responses, in order."""
    start = len(history())
    for cell in code_cells(nb):
        ip.run_cell(cell.source)
    return history()[start:]


def test_conversation_and_threads_round_trip(ip, sim, tmp_path):
    pytest.importorskip("aihubmix_magic.services.threads")
    from aihubmix_magic.session import state as _session

    start = len(history())
    ip.run_cell_magic("aihubmix", "-m gpt-4o-mini", "My name is Ada. Say hello.")
    ip.run_cell_magic("aihubmix", "-m gpt-4o-mini -c", "What is my name?")
    ip.run_cell_magic("aihubmix", "-e responses -m gpt-4o-mini --thread lab", "Plan an experiment.")
    ip.run_cell_magic("aihubmix", "-e responses -m gpt-4o-mini --thread lab", "Now list the risks.")
    originals = history()[start:]
    nb = nbformat.read(export_notebook(originals, tmp_path / "talk.ipynb"), as_version=4)
    lines = [cell.source.split("\n")[0] for cell in code_cells(nb)]
    assert lines == ["%%aihubmix -m gpt-4o-mini -e chat", "%%aihubmix -m gpt-4o-mini -e chat -c",
                     "%%aihubmix -m gpt-4o-mini -e responses --thread lab",
                     "%%aihubmix -m gpt-4o-mini -e responses --thread lab"]
    assert code_cells(nb)[3].metadata["aihubmix"]["thread"] == "lab"
    _session.current().threads.reset("lab")
    again = replay(ip, nb)
    assert [r.request for r in again] == [r.request for r in originals]

    # %aihubmix export --thread NAME: only that thread's answers
    ip.run_line_magic("aihubmix", f"export {tmp_path / 'lab.ipynb'} --thread lab")
    lab = nbformat.read(tmp_path / "lab.ipynb", as_version=4)
    assert [c.source.split("\n")[1] for c in code_cells(lab)] == ["Plan an experiment.", "Now list the risks."]
    assert lab.metadata["aihubmix"]["thread"] == "lab"
    with pytest.raises(UsageError, match="no thread named 'nope'"):
        ip.run_line_magic("aihubmix", f"export {tmp_path / 'x.ipynb'} --thread nope")
    with pytest.raises(UsageError, match="Usage"):
        ip.run_line_magic("aihubmix", f"export {tmp_path / 'x.ipynb'} --thread")


def test_formats_images_and_braces_round_trip(ip, sim, tmp_path):
    pytest.importorskip("aihubmix_magic.notebook.formats")
    png = tmp_path / "dot.png"
    png.write_bytes(bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e2d5c2f90000000049454e44ae426082"))
    start = len(history())
    ip.run_cell_magic("aihubmix", '-m gpt-4o-mini -f json -s "You grade essays."', "Give a json grade.")
    ip.run_cell_magic("aihubmix", "-e responses -m gpt-4o-mini -f json", "Give json again.")
    ip.run_cell_magic("aihubmix", f"-m gpt-4o-mini --image {png}", "What is in this picture?")
    ip.run_cell_magic("aihubmix", "-m gpt-4o-mini -f code", "Write a function.")
    ip.run_cell_magic("aihubmix", "-m gpt-4o-mini --no-template", "Explain {name} in an f-string.")
    originals = history()[start:]
    nb = nbformat.read(export_notebook(originals, tmp_path / "f.ipynb"), as_version=4)
    lines = [cell.source.split("\n")[0] for cell in code_cells(nb)]
    assert lines[0] == '%%aihubmix -m gpt-4o-mini -e chat -s "You grade essays." -f json'
    assert lines[1] == "%%aihubmix -m gpt-4o-mini -e responses -f json"
    assert lines[2].startswith('%%aihubmix -m gpt-4o-mini -e chat --image "data:image/png;base64,') or \
        lines[2].startswith("%%aihubmix -m gpt-4o-mini -e chat --image data:image/png;base64,")
    assert lines[3] == "%%aihubmix -m gpt-4o-mini -e chat -f code"
    assert lines[4] == "%%aihubmix -m gpt-4o-mini -e chat --no-template"
    assert code_cells(nb)[2].metadata["aihubmix"]["images"] == 1
    again = replay(ip, nb)
    assert [r.request for r in again] == [r.request for r in originals]


def test_comparison_becomes_one_compare_cell(ip, sim, tmp_path):
    pytest.importorskip("aihubmix_magic.notebook.compare")
    start = len(history())
    ip.run_cell_magic("aihubmix", '--compare gpt-4o-mini,claude-haiku-4-5 -s "Be brief."', "Define entropy.")
    comparison = history()[start]
    assert len(comparison.responses) == 2
    nb = nbformat.read(export_notebook([comparison], tmp_path / "c.ipynb"), as_version=4)
    (cell,) = code_cells(nb)
    assert cell.source == '%%aihubmix --compare gpt-4o-mini,claude-haiku-4-5 -e chat -s "Be brief."\nDefine entropy.'
    markdown = [o.data["text/markdown"] for o in cell.outputs]
    for response in comparison.responses:
        assert f"**{response.model}**" in markdown and response.text in markdown
    assert [m["model"] for m in cell.metadata["aihubmix"]["compare"]] == ["gpt-4o-mini", "claude-haiku-4-5"]
    again = replay(ip, nb)
    assert [r.request for r in again[0].responses] == [r.request for r in comparison.responses]

"""Keys where people keep them (issue 22): `%aihubmix key --save` into the system keyring, found there by a
new kernel; Colab's Secrets; `%aihubmix config` says where the key came from. The keyring is always a real
file-based backend in a temporary directory (keyrings.alt's PlaintextKeyring), never the machine's."""

from __future__ import annotations

import importlib.machinery
import os
import re
import sys
import types

import nbformat
import pytest
from IPython.core.error import UsageError
from nbclient import NotebookClient

from aihubmix_magic import settings

KEY = "sk-saved-in-keyring-0123456789abcdefXYZ"


@pytest.fixture
def file_keyring(tmp_path):
    import keyring
    from keyrings.alt.file import PlaintextKeyring

    backend = PlaintextKeyring()
    backend.file_path = str(tmp_path / "keyring" / "keyring_pass.cfg")
    saved = keyring.get_keyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(saved)


@pytest.fixture
def fresh_lookup():
    """As in a new kernel: no key yet, the stores not looked in."""
    settings.set_key(None)
    settings._searched = False
    yield
    settings._searched = False


def test_key_save_stores_it_in_the_keyring(ip, monkeypatch, capsys, file_keyring):
    import getpass

    monkeypatch.setattr(getpass, "getpass", lambda prompt="": KEY)
    ip.run_line_magic("aihubmix", "key --save")
    out = capsys.readouterr().out
    assert "saved in the system keyring (PlaintextKeyring)" in out and KEY not in out and KEY[-4:] in out
    assert file_keyring.get_password("aihubmix-magic", "AIHUBMIX_API_KEY") == KEY
    assert settings.api_key == KEY
    ip.run_line_magic("aihubmix", "config")
    assert "(from the system keyring (PlaintextKeyring))" in capsys.readouterr().out
    ip.run_line_magic("aihubmix", "key --forget")
    assert "deleted" in capsys.readouterr().out
    assert file_keyring.get_password("aihubmix-magic", "AIHUBMIX_API_KEY") is None


def test_key_save_with_an_empty_answer_saves_the_key_in_use(ip, monkeypatch, capsys, file_keyring):
    import getpass

    from tests.conftest import TEST_KEY

    monkeypatch.setattr(getpass, "getpass", lambda prompt="": "")
    ip.run_line_magic("aihubmix", "key --save")
    assert file_keyring.get_password("aihubmix-magic", "AIHUBMIX_API_KEY") == TEST_KEY
    assert TEST_KEY not in capsys.readouterr().out


def test_a_stored_key_is_found_when_no_key_is_set(ip, sim, file_keyring, fresh_lookup, capsys):
    file_keyring.set_password("aihubmix-magic", "AIHUBMIX_API_KEY", KEY)
    ip.run_cell_magic("aihubmix", "", "hello")
    assert sim.requests[-1].headers["authorization"] == f"Bearer {KEY}"
    ip.run_line_magic("aihubmix", "config")
    out = capsys.readouterr().out
    assert f"sk-…{KEY[-4:]} (from the system keyring (PlaintextKeyring))" in out and KEY not in out


def test_colab_secrets_come_before_the_keyring(ip, sim, monkeypatch, file_keyring, fresh_lookup, capsys):
    file_keyring.set_password("aihubmix-magic", "AIHUBMIX_API_KEY", KEY)
    colab_key = "sk-from-colab-secrets-abcdefghijklmnop"
    userdata = types.ModuleType("google.colab.userdata")
    userdata.get = lambda name: colab_key if name == "AIHUBMIX_API_KEY" else None  # type: ignore[attr-defined]
    colab = types.ModuleType("google.colab")
    colab.__spec__ = importlib.machinery.ModuleSpec("google.colab", None)
    colab.userdata = userdata  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab.userdata", userdata)
    ip.run_line_magic("aihubmix", "config")
    assert "(from Colab Secrets (AIHUBMIX_API_KEY))" in capsys.readouterr().out
    ip.run_cell_magic("aihubmix", "", "hello")
    assert sim.requests[-1].headers["authorization"] == f"Bearer {colab_key}"


def test_without_keyring_save_is_a_one_line_hint(ip, monkeypatch):
    import getpass

    asked = []
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": asked.append(prompt) or KEY)
    monkeypatch.setitem(sys.modules, "keyring", None)
    with pytest.raises(UsageError, match=r"pip install 'aihubmix-magic\[keyring\]'") as info:
        ip.run_line_magic("aihubmix", "key --save")
    assert "\n" not in str(info.value) and asked == []


def test_without_keyring_nothing_is_found_and_the_error_says_so(ip, sim, monkeypatch, fresh_lookup):
    from aihubmix_magic import MissingKeyError

    monkeypatch.setitem(sys.modules, "keyring", None)
    with pytest.raises(MissingKeyError):
        ip.run_cell_magic("aihubmix", "", "hello")
    assert sim.requests == []


@pytest.mark.parametrize("line", ["key sk-typed-in-a-cell", "key --save --forget", "key --store"])
def test_bad_key_commands(ip, line):
    with pytest.raises(UsageError):
        ip.run_line_magic("aihubmix", line)


@pytest.mark.kernel
def test_a_new_kernel_finds_the_saved_key(tmp_path, sim):
    """Kernel 1 saves the key (hidden input, answered by a stub); kernel 2, without AIHUBMIX_API_KEY, uses it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIHUBMIX_")}
    env.update({"AIHUBMIX_BASE_URL": sim.base_url, "AIHUBMIX_DATA_DIR": str(tmp_path / "data"),
                "PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring",
                "XDG_DATA_HOME": str(tmp_path / "share")})  # where PlaintextKeyring keeps its file
    # the kernel puts its own getpass in place for each cell (nbclient has no stdin): answer through it
    first = [f"get_ipython().kernel.getpass = lambda prompt='', stream=None: {KEY!r}", "%load_ext aihubmix_magic",
             "%aihubmix key --save"]
    second = ["%load_ext aihubmix_magic", "%aihubmix config", "%%aihubmix\nhello from a new kernel"]
    outputs = []
    sim.reset()
    for cells in (first, second):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
        NotebookClient(nb, timeout=120, kernel_name="python3").execute(env=env)
        outputs.append(["\n".join(o.get("text", "") + "".join(map(str, o.get("data", {}).values()))
                                  for o in cell.outputs) for cell in nb.cells])
    assert "saved in the system keyring (PlaintextKeyring)" in outputs[0][2]
    assert re.search(r"key\s+sk-…\w{4} \(from the system keyring \(PlaintextKeyring\)\)", outputs[1][1])
    assert 'You asked: "hello from a new kernel"' in outputs[1][2]
    chats = [r for r in sim.requests if r.path.endswith("/chat/completions")]
    assert chats and chats[-1].headers["authorization"] == f"Bearer {KEY}"
    stored = list((tmp_path / "share").rglob("*.cfg"))
    assert stored  # the key is in the keyring's file, and nowhere else that we wrote
    for path in (tmp_path / "data").rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes()

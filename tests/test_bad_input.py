"""Bad input never reaches the network: every option with bad values, empty cells, unknown or misused
subcommands, and base URLs that are not URLs give one line (a UsageError or our own error), and the
simulator counts zero requests. Extends the table in test_magics.py without repeating it."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from IPython.core.error import UsageError

import aihubmix_magic
from aihubmix_magic import Client, ConfigurationError, settings
from tests.conftest import TEST_KEY

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.mark.parametrize(("line", "words"), [
    # values the parser or the settings refuse
    ("-m", "expected one argument"),
    ("-m ''", "No model"),
    ("-m '   '", "No model"),
    ("-e", "expected one argument"),
    ("-e Chat", "invalid choice"),
    ("-s", "expected one argument"),
    ("-t -0.1", "between 0 and 2"),
    ("-t nan", "between 0 and 2"),
    ("-t inf", "between 0 and 2"),
    ("-t 1,5", "invalid float value"),
    ("--top-p -0.1", "between 0 and 1"),
    ("--top-p 2", "between 0 and 1"),
    ("--top-p x", "invalid float value"),
    ("--max-tokens -3", "positive"),
    ("--max-tokens 1e3", "invalid int value"),
    ("--max-tokens 2.5", "invalid int value"),
    ("-r", "expected one argument"),
    ("-r HIGH", "invalid choice"),
    ("--no-stream yes", "unrecognized arguments"),
    ("-o", "expected one argument"),
    ("-o 1abc", "Python variable name"),
    ("-o a.b", "Python variable name"),
    ("-o ''", "Python variable name"),
    ("-o class", "Python variable name"),
    ("--thread", "expected one argument"),
    ("--store", "responses endpoint only"),
    ("-f", "expected one argument"),
    ("-f yaml", "invalid choice"),
    ("--schema", "expected one argument"),
    ("--schema no_such_variable", "no variable named"),
    ("--image", "expected one argument"),
    ("--image /no/such/file.png", "no such file"),
    ("--compare", "expected one argument"),
    ("--compare gpt-4o-mini", "two or more models"),
    ("--compare gpt-4o-mini,gpt-4o -m deepseek-chat", "--compare does not go with -m"),
    ("--over", "expected one argument"),
    ("--over no_such_list", "NameError"),
    ("--over [1,2] --concurrency 0", "1 or more"),
    ("--over [1,2] --concurrency x", "invalid int value"),
    ("--over [1,2] -c", "cannot be combined"),
    ("--concurrency 3", "goes with --over"),
    ("--no-template x", "unrecognized arguments"),
    ("-x", "unrecognized arguments"),
    ('-s "unclosed', "check the quotes"),
    ("-- -m gpt-4o", "unrecognized arguments"),
])
def test_bad_options_are_one_line_and_send_nothing(ip, sim, line, words):
    with pytest.raises(UsageError) as info:
        ip.run_cell_magic("aihubmix", line, "hi")
    message = str(info.value).strip()
    assert words in message and "\n" not in message
    assert sim.request_count == 0


@pytest.mark.parametrize("cell", ["", "\n", "   \n\t\n  ", "\r\n"])
@pytest.mark.parametrize("line", ["", "-m gpt-4o-mini -e responses", "--no-stream"])
def test_an_empty_cell_sends_nothing(ip, sim, line, cell):
    with pytest.raises(UsageError, match="empty"):  # ours, or IPython's for a cell with no body at all
        ip.run_cell_magic("aihubmix", line, cell)
    assert sim.request_count == 0


@pytest.mark.parametrize(("line", "words"), [
    ("fly", "Unknown subcommand 'fly'"),
    ("Config", "Unknown subcommand 'Config'"),
    ("--help-me", "Unknown subcommand"),
    ("_help", "Unknown subcommand"),
    ("use", "Usage: %aihubmix use MODEL"),
    ("use a b", "Usage: %aihubmix use MODEL"),
    ("demo now", "Usage: %aihubmix demo"),
    ("demo off please", "Usage: %aihubmix demo"),
    ("cache maybe", "Usage: %aihubmix cache"),
    ("cache on off", "Usage: %aihubmix cache"),
    ("reset a b", "Usage: %aihubmix reset"),
    ("history a b", "Usage: %aihubmix history"),
    ("export", "Usage: %aihubmix export"),
    ("export a.ipynb b.ipynb", "Usage: %aihubmix export"),
    ("export a.ipynb --thread", "Usage: %aihubmix export"),
    ("panel now", "Usage: %aihubmix panel"),
    ("key sk-typed-in-a-cell", "saved in the notebook"),
])
def test_bad_subcommands_are_one_line_and_send_nothing(ip, sim, line, words):
    saved_model = settings.model
    with pytest.raises(UsageError) as info:
        ip.run_line_magic("aihubmix", line)
    assert words in str(info.value) and "\n" not in str(info.value).strip()
    assert sim.request_count == 0 and settings.model == saved_model and settings.api_key == TEST_KEY


# -- base URLs that are not URLs --------------------------------------------------------------------------
NOT_URLS = ["not a url", "aihubmix.com/v1", "ftp://aihubmix.com/v1", "http://", "https:///v1", "", "   ",
            "javascript:alert(1)", "file:///etc/passwd", "https://[::1/v1", "http://127.0.0.1:abc/v1",
            "https://example.com:99999/v1", "https://exa mple.com/v1", "https://ex\x00ample.com/v1",
            "https://example.com/\nv1"]


@pytest.mark.parametrize("url", NOT_URLS)
def test_config_base_url_that_is_not_a_url(ip, sim, url, capsys):
    before = settings.base_url
    capsys.readouterr()
    ip.run_cell(f"%config AihubmixMagics.base_url = {url!r}")
    shown = ANSI.sub("", "".join(capsys.readouterr()))
    assert settings.base_url == before  # unchanged: the next cells still go to the simulator
    ip.run_cell_magic("aihubmix", "", "hi")
    assert sim.request_count == 1 and sim.requests[0].path == "/v1/chat/completions"
    assert "Traceback" not in shown


@pytest.mark.parametrize("url", NOT_URLS)
def test_settings_base_url_that_is_not_a_url_is_our_one_line_error(ip, sim, url, capsys):
    before = settings.base_url
    with pytest.raises(ConfigurationError, match="is not an http\\(s\\) URL"):
        settings.base_url = url
    assert settings.base_url == before
    # and as the user sees it in a cell: one line, no traceback into traitlets
    capsys.readouterr()
    ip.run_cell(f"import aihubmix_magic\naihubmix_magic.settings.base_url = {url!r}")
    shown = ANSI.sub("", "".join(capsys.readouterr()))
    lines = [line for line in shown.splitlines() if line.strip()]
    assert lines == [lines[0]] and lines[0].startswith("InvalidSettingError: Base URL"), shown
    assert sim.request_count == 0


@pytest.mark.parametrize(("name", "value"), [("timeout", -1.0), ("timeout", 0.0), ("connect_timeout", -5.0),
                                             ("max_retries", -1), ("temperature", 2.5), ("top_p", 1.1),
                                             ("max_tokens", 0), ("template_max_rows", 0)])
def test_other_bad_settings_are_our_error_and_change_nothing(ip, sim, name, value):
    before = getattr(settings, name)
    with pytest.raises(ConfigurationError):
        setattr(settings, name, value)
    assert getattr(settings, name) == before
    ip.run_line_magic("config", f"AihubmixMagics.{name} = {value!r}")  # IPython logs the one-line reason
    assert getattr(settings, name) == before and sim.request_count == 0


@pytest.mark.parametrize("url", [url for url in NOT_URLS if url])  # Client(base_url="") means "not given"
def test_a_client_with_a_base_url_that_is_not_a_url(sim, url):
    with pytest.raises(ConfigurationError, match="not an http\\(s\\) URL"):
        Client(TEST_KEY, url)
    assert sim.request_count == 0


def test_a_bad_base_url_in_the_environment_does_not_break_the_import_but_sends_nothing():
    code = ("import aihubmix_magic, aihubmix_magic.session.state\n"
            "try:\n"
            "    aihubmix_magic.session.state.client()\n"
            "except aihubmix_magic.ConfigurationError as exc:\n"
            "    print(exc)\n")
    result = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True,
                            env={"AIHUBMIX_BASE_URL": "not a url", "AIHUBMIX_API_KEY": TEST_KEY, "PATH": ""},
                            check=True)
    assert "AIHUBMIX_BASE_URL is unusable" in result.stdout and "not an http(s) URL" in result.stdout
    assert TEST_KEY not in result.stdout + result.stderr


def test_choosing_a_base_url_replaces_a_bad_one_from_the_environment():
    code = ("import aihubmix_magic, aihubmix_magic.session.state\n"
            "aihubmix_magic.settings.base_url = 'http://127.0.0.1:9/v1'\n"
            "print(aihubmix_magic.session.state.client().base_url)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={"AIHUBMIX_BASE_URL": "not a url", "PATH": ""}, check=True)
    assert result.stdout.strip() == "http://127.0.0.1:9/v1"


def test_invalid_setting_error_is_both_ours_and_a_trait_error():
    from traitlets import TraitError

    with pytest.raises(TraitError):
        settings.temperature = 3
    with pytest.raises(aihubmix_magic.AihubmixError):
        settings.temperature = 3

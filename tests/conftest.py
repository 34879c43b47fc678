"""Shared fixtures: one simulator for the session over a real loopback socket, a real IPython shell."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import pytest

from aihubmix_magic import settings
from aihubmix_magic.simulator import Simulator

TEST_KEY = "sk-test-0123456789abcdefghijklmnop"


@pytest.fixture(scope="session")
def sim():
    with Simulator() as server:
        yield server


@pytest.fixture
def client(sim):
    """Our Client on the simulator, without retries: a test sees each failure as it comes."""
    from aihubmix_magic import Client

    with Client(TEST_KEY, sim.base_url, max_retries=0) as c:
        yield c


@pytest.fixture
def sdk(sim):
    """The official openai SDK on the simulator (the reference client), without retries."""
    import openai

    with openai.OpenAI(api_key=TEST_KEY, base_url=sim.base_url, max_retries=0) as c:
        yield c


@pytest.fixture(scope="session")
def _config_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("aihubmix-config")


@pytest.fixture(autouse=True)
def _environment(sim, monkeypatch, tmp_path, _config_dir):
    """Every test talks to the simulator with a test key, with its own cache directory (the response
    cache and the batch journal, never the user's); settings are restored afterwards. Saved prompts and
    aliases of the machine's user are out of reach (an empty personal folder)."""
    monkeypatch.setenv("AIHUBMIX_CONFIG_DIR", str(_config_dir))
    monkeypatch.setenv("AIHUBMIX_API_KEY", TEST_KEY)
    monkeypatch.setenv("AIHUBMIX_BASE_URL", sim.base_url)
    monkeypatch.setenv("AIHUBMIX_CACHE_PATH", str(tmp_path / "aihubmix-cache" / "responses.sqlite"))
    monkeypatch.setenv("AIHUBMIX_DATA_DIR", str(tmp_path / "aihubmix-data"))  # the log: never the real home's
    saved = settings.values()
    saved_key = settings.api_key
    settings.base_url = sim.base_url
    settings.set_key(TEST_KEY)
    sim.reset()
    yield
    log = sys.modules.get("aihubmix_magic.store.log")
    if log is not None:  # each test has its own log file: the connection to this one is not kept open
        log._close_all()
    for name, value in saved.items():
        setattr(settings, name, value)
    settings.set_key(saved_key)
    settings.demo = False


@pytest.fixture(scope="session")
def shell():
    """A real InteractiveShell with the extension loaded."""
    from IPython.testing import globalipapp

    globalipapp.start_ipython()
    ip = globalipapp.get_ipython()
    ip.run_line_magic("load_ext", "aihubmix_magic")
    yield ip


@pytest.fixture
def ip(shell):
    """The shell, with a recording display publisher so tests can read what was displayed."""
    from IPython.core.displaypub import DisplayPublisher

    class Recorder(DisplayPublisher):
        def __init__(self):
            super().__init__(shell=shell)
            self.messages: list[dict] = []

        def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs):
            self.messages.append({"data": data, "transient": transient or {}, "update": update})

        def clear_output(self, wait=False):
            self.messages.append({"clear": True, "wait": wait})

        def outputs(self) -> list[dict]:
            """What a frontend shows at the end: clears and updates applied."""
            shown: list[dict] = []
            for message in self.messages:
                if message.get("clear"):
                    shown = []
                    continue
                display_id = message["transient"].get("display_id")
                if message["update"]:
                    for output in shown:
                        if output["id"] == display_id:
                            output["data"] = message["data"]
                    continue
                shown.append({"id": display_id, "data": message["data"]})
            return [output["data"] for output in shown]

    saved = shell.display_pub
    shell.display_pub = Recorder()
    settings.display = "notebook"
    yield shell
    shell.display_pub = saved


_SESSION_CACHE: dict = {}


def without_tripwire(env: dict[str, str]) -> dict[str, str]:
    """`env` for the one step of a test that must use the package index (a build, Binder's pip install)."""
    return {name: value for name, value in env.items() if name not in _Tripwire.VARIABLES}


class _Tripwire:
    """No test may reach the internet (the real AiHubMix above all): every HTTP(S) request to a host that is
    not loopback goes, through the standard proxy variables that httpx, pip and urllib honour, to this
    loopback listener, which records what was asked and closes the connection (so the request fails at
    once). Kernels and subprocesses inherit the variables. The session fails if anything was recorded."""

    VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")

    def __init__(self) -> None:
        import socket
        import threading

        self.hits: list[str] = []
        self.saved = {name: os.environ.get(name) for name in (*self.VARIABLES, "NO_PROXY", "no_proxy")}
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        threading.Thread(target=self._serve, name="network-tripwire", daemon=True).start()
        for name in self.VARIABLES:
            os.environ[name] = self.url
        # .invalid (RFC 6761) never resolves: tests that use such a host expect the DNS failure itself
        os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost,.invalid"

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._server.accept()
            except OSError:  # closed at the end of the session
                return
            with connection:
                connection.settimeout(2)
                try:
                    first = connection.recv(4096).split(b"\r\n", 1)[0]
                except OSError:
                    first = b"(nothing read)"
                # which test was running (the variable pytest keeps up to date in this process)
                self.hits.append(f"{first.decode('latin-1')} (during {os.environ.get('PYTEST_CURRENT_TEST', '?')})")

    def close(self) -> None:
        self._server.close()
        for name, value in self.saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def pytest_configure(config):
    os.environ.setdefault("JUPYTER_PLATFORM_DIRS", "1")
    config._aihubmix_tripwire = _Tripwire()
    # the caches (the model catalog is fetched by every prompt cell) go to a directory of the test session,
    # never the real home's, for this process and every kernel or subprocess it starts
    directory = tempfile.mkdtemp(prefix="aihubmix-test-cache-")
    _SESSION_CACHE.update(directory=directory, saved=os.environ.get("AIHUBMIX_CACHE_PATH"),
                          saved_data=os.environ.get("AIHUBMIX_DATA_DIR"))
    os.environ["AIHUBMIX_CACHE_PATH"] = os.path.join(directory, "responses.sqlite")
    os.environ["AIHUBMIX_DATA_DIR"] = os.path.join(directory, "data")  # the log, for kernels started by tests too
    # no test reads or writes the machine's real keyring (tests of `key --save` choose a file-based one)
    _SESSION_CACHE["saved_keyring"] = os.environ.get("PYTHON_KEYRING_BACKEND")
    os.environ["PYTHON_KEYRING_BACKEND"] = "keyring.backends.null.Keyring"


def pytest_sessionfinish(session, exitstatus):
    tripwire = getattr(session.config, "_aihubmix_tripwire", None)
    if tripwire is not None and tripwire.hits:
        session.config.get_terminal_writer().line(
            "Tests tried to reach hosts off this machine: " + "; ".join(tripwire.hits), red=True)
        session.exitstatus = 1


def pytest_unconfigure(config):
    tripwire = getattr(config, "_aihubmix_tripwire", None)
    if tripwire is not None:
        tripwire.close()
    if not _SESSION_CACHE:
        return
    for name, saved in (("AIHUBMIX_CACHE_PATH", _SESSION_CACHE["saved"]),
                        ("AIHUBMIX_DATA_DIR", _SESSION_CACHE["saved_data"]),
                        ("PYTHON_KEYRING_BACKEND", _SESSION_CACHE["saved_keyring"])):
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved
    shutil.rmtree(_SESSION_CACHE["directory"], ignore_errors=True)

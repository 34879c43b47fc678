"""Row 4, load time: what `%load_ext aihubmix_magic` adds to a bare IPython shell, and what
`import aihubmix_magic` drags in.

Each run is a fresh subprocess, alternating with a bare shell's (no extension), with byte-code cached as in any installed package (a warm-up run writes it
under a temporary PYTHONPYCACHEPREFIX: this workplace sets PYTHONDONTWRITEBYTECODE=1, under which every
process compiles every module again; that cold figure is shown too, without a verdict). It creates a bare `InteractiveShell`, then times `%load_ext EXT` with
`time.perf_counter()` around it (the cost the user sees after the shell is up). The bare shell's own
start-up, timed in the same subprocesses, is the baseline that the added time is set against. Runs of
aihubmix_magic and of jupyter-ai-magics (when installed) alternate; medians are reported.

The whole processes are timed from outside too: the difference of the medians (with the extension, bare)
is shown as a second figure.

Targets: load_ext adds <= 30 ms; neither `import aihubmix_magic` nor `%load_ext aihubmix_magic` imports
httpx, asyncio, ipywidgets, nbformat or pandas (they load when a cell first needs them). jupyter-ai-magics is an optional baseline (the `bench` extra does not install it): "not installed"
when absent.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

from _common import ROOT, Result, median

NAME = "load"
TITLE = "4. Load time"
HEAVY = ("httpx", "asyncio", "ipywidgets", "nbformat", "pandas")
TARGET = 0.030  # seconds that %load_ext may add

PROBE = """
import json, sys, time
started = time.perf_counter()
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
shell_ready = time.perf_counter()
ext = sys.argv[1]
if ext != "-":
    shell.run_line_magic("load_ext", ext)
loaded = time.perf_counter()
print(json.dumps({"shell": shell_ready - started, "load": loaded - shell_ready,
                  "modules": [m for m in HEAVY if m in sys.modules]}))
""".replace("HEAVY", repr(HEAVY))

IMPORT_PROBE = f"import json, sys, aihubmix_magic; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"


def probe(extension: str, env: dict | None = None) -> dict:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PROBE, extension], capture_output=True, text=True, cwd=ROOT,
                          check=True, timeout=120, env=env)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process"] = time.perf_counter() - started
    return result


def bytecode_env(cache: str) -> dict:
    """Byte-code cached, as in any installed package (this workplace sets PYTHONDONTWRITEBYTECODE=1)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = cache
    return env


def run(quick: bool = False) -> list[Result]:
    repeats = 1 if quick else 9
    extensions = ["aihubmix_magic"]
    has_jupyter_ai = importlib.util.find_spec("jupyter_ai_magics") is not None
    if has_jupyter_ai:
        extensions.append("jupyter_ai_magics")
    runs: dict[str, list[dict]] = {name: [] for name in ["-", *extensions]}
    cold: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="aihubmix-pyc-") as cache:
        env = bytecode_env(cache)
        for name in extensions:
            probe(name, env)  # writes the byte-code
        for _ in range(repeats):
            for name in ["-", *extensions]:  # alternated: bare shell, ours, (theirs), bare shell, …
                runs[name].append(probe(name, env))
            if not quick:  # compiling every module takes seconds: not in the smoke test
                cold.append(probe("aihubmix_magic", {**env, "PYTHONDONTWRITEBYTECODE": "1",
                                                     "PYTHONPYCACHEPREFIX": cache + "-none"}))
    ours = runs["aihubmix_magic"]
    cold_load = median([r["load"] for r in cold]) if cold else float("nan")
    load = median([r["load"] for r in ours])
    shell = median([r["shell"] for r in ours])
    process = median([r["process"] for r in ours]) - median([r["process"] for r in runs["-"]])
    imported = json.loads(subprocess.run([sys.executable, "-c", IMPORT_PROBE], capture_output=True, text=True,
                                         cwd=ROOT, check=True, timeout=120).stdout)
    after_load = sorted({m for r in ours for m in r["modules"]})
    results = [
        Result(TITLE, "%load_ext aihubmix_magic on a bare shell",
               f"+{load * 1000:.0f} ms (bare shell start-up {shell * 1000:.0f} ms; {repeats} fresh processes, "
               f"alternated with bare ones: whole process +{process * 1000:.0f} ms)",
               f"{load:.3f} s", f"<= {TARGET:.2f} s", load <= TARGET, "byte-code cached"),
        Result(TITLE, "%load_ext aihubmix_magic, no byte-code cache (first run after install)",
               f"+{cold_load * 1000:.0f} ms", f"{cold_load:.3f} s", "info", None),
        Result(TITLE, "import aihubmix_magic or %load_ext imports " + "/".join(HEAVY),
               ", ".join(imported) or "none of them"
               + (f" (after %load_ext: {', '.join(after_load)})" if after_load else ""),
               str(len(imported) + len(after_load)), "0", not imported and not after_load),
    ]
    if has_jupyter_ai:
        theirs = median([r["load"] for r in runs["jupyter_ai_magics"]])
        results.append(Result(TITLE, "%load_ext jupyter_ai_magics (baseline)", f"+{theirs * 1000:.0f} ms",
                              f"{theirs / load:.1f}x ours", "info", None))
    else:
        results.append(Result(TITLE, "%load_ext jupyter_ai_magics (baseline)", "not installed", "—", "info",
                              None, "optional: pip install jupyter-ai-magics"))
    return results

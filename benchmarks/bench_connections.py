"""Row 5, connection reuse: 20 consecutive `%%aihubmix` cells open exactly one TCP connection.

A bare IPython shell in a fresh subprocess loads the extension and runs 20 `%%aihubmix` cells against
the simulator (in the subprocess too); the simulator counts the connections it accepted
(`connections_opened`). The baseline is one connection per cell (what a client that is not kept
across cells, e.g. `httpx.post` per cell, would open). Quick mode: 3 cells.
"""

from __future__ import annotations

import json
import subprocess
import sys

from _common import ROOT, Result

NAME = "connections"
TITLE = "5. Connection reuse"

PROBE = """
import contextlib, io, json, sys
from aihubmix_magic import settings
from aihubmix_magic.simulator import Simulator
simulator = Simulator().start()
settings.base_url = simulator.base_url
settings.set_key("sk-bench-0123456789abcdefghijklmnop")
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
shell.run_line_magic("load_ext", "aihubmix_magic")
cells = int(sys.argv[1])
failures = []
with contextlib.redirect_stdout(io.StringIO()):
    for index in range(cells):
        result = shell.run_cell(f"%%aihubmix -m gpt-4o-mini\\nSay hello, cell {index}, words=20")
        if not result.success:
            failures.append(repr(result.error_in_exec or result.error_before_exec))
print(json.dumps({"connections": simulator.connections_opened, "requests": simulator.request_count,
                  "failures": failures}))
simulator.stop()
"""


def run(quick: bool = False) -> list[Result]:
    cells = 3 if quick else 20
    done = subprocess.run([sys.executable, "-c", PROBE, str(cells)], capture_output=True, text=True, cwd=ROOT,
                          check=True, timeout=300)
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    if figures["failures"]:
        raise RuntimeError(f"cells failed: {figures['failures'][:3]}")
    return [Result(TITLE, f"{cells} consecutive %%aihubmix cells: TCP connections opened",
                   f"{figures['connections']} connection(s) for {figures['requests']} requests "
                   f"(baseline without reuse: {cells})",
                   str(figures["connections"]), "exactly 1", figures["connections"] == 1)]

"""Row: the answer size cap (issue 18). A loopback server answers with 1 GiB of zeros sent as about 1 MB of
gzip; each scenario runs in a fresh process (`_answer_bomb.py`) and reports the error it ended in and its
peak resident set (`ru_maxrss`). Scenarios: `batch()` (the lanes), the sync `Client` non-streamed and
streamed (an event stream), and a `%%aihubmix` cell. Baseline, measured in the same run: the same process
with a small good answer (the interpreter, the imports and the server thread). Target: the error is
AnswerTooLargeError and the peak stays under 400 MB (before the cap: 4.6 GB in `batch()`, 2.4 GB in the
Client). Quick mode: a 256 MiB bomb (still four times the default cap of 64 MiB).
"""

from __future__ import annotations

import json
import subprocess
import sys

from _common import HERE, ROOT, Result

NAME = "bomb"
TITLE = "Answer size cap"
LIMIT_MB = 400


def _run(scenario: str, size_mb: int) -> dict:
    done = subprocess.run([sys.executable, str(HERE / "_answer_bomb.py"), scenario, str(size_mb)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(quick: bool = False) -> list[Result]:
    size_mb = 256 if quick else 1024
    baseline = _run("baseline", size_mb)
    results = [Result(TITLE, "baseline: the same process, a small good answer", f"{baseline['peak_mb']:.0f} MB peak",
                      "—", "—", None)]
    for scenario, label in (("batch", "batch()"), ("client", "Client.chat"), ("stream", "Client.chat(stream=True)"),
                            ("cell", "%%aihubmix cell")):
        result = _run(scenario, size_mb)
        passed = result["error"] == "AnswerTooLargeError" and result["peak_mb"] < LIMIT_MB
        results.append(Result(
            TITLE, f"{label}: {size_mb:,} MiB of zeros as gzip",
            f"{result['error']}; peak {result['peak_mb']:.0f} MB ({result['peak_mb'] - baseline['peak_mb']:+.0f} MB "
            f"over the baseline)", f"{result['peak_mb']:.0f} MB", f"AnswerTooLargeError, < {LIMIT_MB} MB", passed))
    return results


if __name__ == "__main__":
    from run import table

    print(table(run("--quick" in sys.argv)))

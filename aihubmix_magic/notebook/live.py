"""What every live display shares: the view interface, the display mode, and one skeleton that runs
the work on helper threads while the calling thread paints and takes Ctrl-C.

A cell's stream (`_display.consume`), `--compare` (`_compare.run_comparison`) and `batch()`
(`_batch._Run.execute`) all run the same way: helper threads read sockets (or run an event loop), the
calling thread, the one the kernel interrupts, repaints at most as often as the view asks, and on
KeyboardInterrupt the work is cancelled (sockets shut down), the helpers are joined, and the interrupt
goes on up. `Live.run` is that loop, once.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

from ..core.live import Live, LiveView

__all__ = ["Live", "LiveView", "display_mode", "show_notes"]


def display_mode(setting: str | None = None) -> str:
    """"notebook" or "terminal": `settings.display`, where "auto" means a notebook when IPython runs in a
    kernel (a terminal IPython or a script gets plain text)."""
    if setting is None:
        from ..session.settings import settings

        setting = settings.display
    if setting != "auto":
        return setting
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return "notebook" if getattr(shell, "kernel", None) is not None else "terminal"


def show_notes(notes: list[str]) -> None:
    """One "⚠" line per warning before a request goes (it goes anyway): Markdown in a notebook, text
    elsewhere. Dollar signs are escaped, as two of them in one Markdown block would render as LaTeX."""
    if not notes:
        return
    if display_mode() == "notebook":
        from IPython.display import display

        from ..services.cost import markdown_dollars

        for note in notes:
            display({"text/markdown": markdown_dollars(f"⚠ {note}"), "text/plain": f"⚠ {note}"}, raw=True)
    else:
        print("\n".join(f"⚠ {note}" for note in notes), flush=True)



"""Progress of a batch: an ipywidgets bar in a notebook, one carriage-return line in a terminal.

Both show done/total, the rate, the time left and the tokens so far (and, when the server limits the
rate, the 429s so far and "rate limited: resuming in 4 s"), and are repainted by the thread that called
`batch()` (never from the event loop's thread), at most about 10 times a second. tqdm does the same split: `notebook.py`
for the widget, a text line elsewhere. The mode is chosen as the magic chooses its view
(`settings.display`: in `auto`, a notebook when IPython runs in a kernel).
"""

from __future__ import annotations

import html
import sys

from ..services.batch import Progress

__all__ = ["Progress", "TextProgress", "WidgetProgress", "progress_mode", "progress_view"]


def progress_mode() -> str:
    """"notebook" or "terminal", as the magic chooses its view (`_live.display_mode`)."""
    from .live import display_mode

    return display_mode()


def progress_view(progress: bool | str, total: int | None):
    """A view for `progress` (True: auto, False: none, or "notebook"/"terminal")."""
    if progress is False or progress is None:
        return None
    mode = progress_mode() if progress is True else progress
    if mode not in ("notebook", "terminal"):
        raise ValueError(f"progress must be True, False, 'notebook' or 'terminal', not {progress!r}")
    return WidgetProgress(total) if mode == "notebook" else TextProgress(total)


class TextProgress:
    """`[#####.....] 5/10 · 3.2/s · ETA 1.6 s · 1,234 tokens`, rewritten in place with `\\r`."""

    width = 24

    def __init__(self, total: int | None, stream=None) -> None:
        self.total = total
        self.stream = stream or sys.stdout
        self._last = ""

    def update(self, state: Progress) -> None:
        filled = int(self.width * state.done / state.total) if state.total else (
            self.width if state.total == 0 else 0)
        text = f"[{'#' * filled}{'.' * (self.width - filled)}] {state.line()}"
        if text != self._last:
            self.stream.write("\r" + text + " " * max(0, len(self._last) - len(text)))
            self.stream.flush()
            self._last = text

    def finish(self, state: Progress, summary: str, *, show: bool = True) -> None:
        """The last repaint, then the summary on a line of its own (`show`: in a batch job, too)."""
        self.update(state)
        self.stream.write("\n" + summary + "\n")
        self.stream.flush()


class WidgetProgress:
    """An IntProgress bar and an HTML label in one HBox, displayed once and updated in place."""

    def __init__(self, total: int | None) -> None:
        import ipywidgets as widgets
        from IPython.display import display

        self.bar = widgets.IntProgress(value=0, min=0, max=max(total or 0, 1), bar_style="info",
                                       layout=widgets.Layout(width="40%"))
        self.label = widgets.HTML(value=f"0/{total}" if total is not None else "0 done")
        self.box = widgets.HBox([self.bar, self.label])
        display(self.box)

    def update(self, state: Progress) -> None:
        if state.total is not None and self.bar.max != max(state.total, 1):
            self.bar.max = max(state.total, 1)
        if self.bar.value != state.done and state.total is not None:
            self.bar.value = state.done
        self.label.value = state.line()

    def finish(self, state: Progress, summary: str, *, show: bool = True) -> None:
        """The last repaint, then the summary: displayed below the bar, or (`show=False`: a batch job, whose
        cell has returned long ago) shown in the bar's label, since a display now would go to another cell."""
        self.update(state)
        total = state.total if state.total is not None else state.done
        self.bar.bar_style = "danger" if state.failed == total and total else (
            "warning" if state.failed or state.done < total else "success")
        if not show:
            self.label.value = html.escape(summary)
            return
        from IPython.display import display

        display({"text/plain": summary}, raw=True)

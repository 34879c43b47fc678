"""Run an example notebook in a real kernel and print what each cell showed, as text.

    .venv/bin/python examples/run.py examples/01-quickstart.ipynb [--save OUT.ipynb]

Without AIHUBMIX_API_KEY the examples use the built-in simulator (`%aihubmix demo auto`), so this needs
no key and no network.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def show(nb) -> None:
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        print("\u2500" * 80)
        print("".join(f"In  | {line}\n" for line in cell.source.splitlines()), end="")
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                text = output.text
            elif output.output_type == "error":
                text = f"{output.ename}: {output.evalue}"
            else:
                data = output.get("data", {})
                text = data.get("text/markdown") or data.get("text/plain") or ", ".join(data)
            print("".join(f"Out | {line}\n" for line in str(text).splitlines()), end="")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--save", type=Path, help="also write the executed notebook here")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per cell")
    args = parser.parse_args(argv)
    nb = nbformat.read(args.notebook, as_version=4)
    NotebookClient(nb, timeout=args.timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(args.notebook.parent)}}).execute()
    show(nb)
    if args.save:
        nbformat.write(nb, args.save)
    return 0


if __name__ == "__main__":
    sys.exit(main())

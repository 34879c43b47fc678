"""A small MCP server over data/reviews.csv, for examples/06-tools.ipynb: the kind of server a team shares
with everyone's editor and notebook. It needs the MCP SDK: pip install 'aihubmix-magic[mcp]'.

    {"mcpServers": {"reviews": {"command": "python", "args": ["reviews_server.py"]}}}   # .aihubmix/mcp.json

Run over stdio by the client that uses it (`%%aihubmix --mcp reviews`); `python reviews_server.py --http 8000`
serves it over streamable HTTP at http://127.0.0.1:8000/mcp instead.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

from mcp.server.mcpserver import MCPServer

DATA = Path(__file__).resolve().parent / "data" / "reviews.csv"
server = MCPServer("reviews", instructions="Product reviews of a small online shop.", log_level="WARNING")


def _rows() -> list[dict[str, str]]:
    with DATA.open(encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))


@server.tool()
def search_reviews(words: str, limit: int = 5) -> str:
    """Reviews that mention any of the words (case does not matter), with their product and star rating.

    Args:
        words: the words to look for, separated by spaces, e.g. "leaking leaks"
        limit: at most this many reviews
    """
    wanted = words.lower().split()
    found = [row for row in _rows() if any(word in row["review"].lower() for word in wanted)]
    if not found:
        return f"No review mentions {words!r}."
    lines = [f"- {row['product']} ({row['rating']} stars): {row['review']}" for row in found[:limit]]
    return f"{len(found)} review(s) mention {' or '.join(map(repr, wanted))}:\n" + "\n".join(lines)


@server.tool()
def product_ratings() -> dict[str, float]:
    """The mean star rating of each product."""
    ratings: dict[str, list[int]] = defaultdict(list)
    for row in _rows():
        ratings[row["product"]].append(int(row["rating"]))
    return {product: round(sum(values) / len(values), 2) for product, values in sorted(ratings.items())}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--http", type=int, metavar="PORT", help="serve over streamable HTTP on 127.0.0.1:PORT")
    port = parser.parse_args().http
    if port:
        server.run("streamable-http", host="127.0.0.1", port=port)
    else:
        server.run()

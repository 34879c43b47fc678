"""A real MCP server for the tests, written with the official `mcp` SDK.

    python tests/mcp_server.py [--tools NAME,NAME] [--http PORT] [--exit-at-start] [--mute]

Over stdio by default, over streamable HTTP on 127.0.0.1:PORT with `--http PORT`. `--tools` keeps only
those tools (the simulator's tool models call the first tool offered). `--exit-at-start` writes a line to
stderr and exits with status 2 (a server that cannot start); `--mute` reads stdin and never answers (a
server that does not answer `initialize`).
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import time
from typing import Any


def get_forecast(city: str) -> str:
    """The weather forecast for a city, tomorrow.

    A second line that `%aihubmix mcp` does not show.
    """
    return f"rain in {city} tomorrow, 14C"


def fail(city: str) -> str:
    """Always fails: there is no weather station."""
    from mcp.server.mcpserver.exceptions import ToolError

    raise ToolError(f"no weather station in {city}")


async def hang(city: str) -> str:
    """Never answers."""
    import anyio

    await anyio.sleep(3600)
    return city


def crash(city: str) -> str:
    """The server exits in the middle of the call."""
    print(f"crash: segfault while looking up {city}", file=sys.stderr, flush=True)
    os._exit(3)


def picture(city: str) -> list[Any]:
    """A map of the city, as text and an image."""
    from mcp.types import ImageContent, TextContent

    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 40).decode()
    return [TextContent(type="text", text=f"map of {city}"), ImageContent(type="image", data=png, mime_type="image/png")]


def station(city: str) -> dict[str, Any]:
    """Structured data: the station's readings."""
    return {"city": city, "temperature": 14, "wind": "W 20 km/h"}


def environment(city: str) -> str:
    """Which of the test's environment variables this server can see."""
    names = ("AIHUBMIX_API_KEY", "MCP_TEST_TOKEN")
    return ", ".join(f"{name}={'set' if os.environ.get(name) else 'absent'}" for name in names)


def pid() -> int:
    """This server's process id."""
    return os.getpid()


TOOLS = {function.__name__: function for function in (get_forecast, fail, hang, crash, picture, station,
                                                        environment, pid)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--http", type=int)
    parser.add_argument("--name", default="test-tools")
    parser.add_argument("--exit-at-start", action="store_true")
    parser.add_argument("--mute", action="store_true")
    args = parser.parse_args()
    if args.exit_at_start:
        if os.environ.get("AIHUBMIX_API_KEY"):  # a server that quotes a secret it was given
            print(f"using the key {os.environ['AIHUBMIX_API_KEY']}", file=sys.stderr, flush=True)
        print("fatal: DATABASE_URL is not set", file=sys.stderr, flush=True)
        sys.exit(2)
    if args.mute:
        print("loading a very large index…", file=sys.stderr, flush=True)
        while True:
            time.sleep(60)
    from mcp.server.mcpserver import MCPServer

    server = MCPServer(args.name, log_level="WARNING")
    for name in args.tools.split(","):
        server.add_tool(TOOLS[name], structured_output=name == "station")
    if args.http:
        server.run("streamable-http", host="127.0.0.1", port=args.http)
    else:
        server.run()


if __name__ == "__main__":
    main()

"""Tools from MCP servers: `%%aihubmix --mcp NAME[,NAME…]`, `batch(..., mcp=[...])`, `%aihubmix mcp`.

The servers are configured in the `mcpServers` JSON that Claude Desktop, VS Code and Cursor use:

    {"mcpServers": {
        "notes":  {"command": "python", "args": ["notes_server.py"], "env": {"NOTES_DIR": "~/notes"}},
        "search": {"url": "https://example.com/mcp", "headers": {"Authorization": "Bearer ${SEARCH_TOKEN}"}}}}

read from `mcp.json` in the notebook folder's `.aihubmix/`, then in the personal config folder (the lookup
of saved prompts, `_prompts.config_places`; a server named in both is the notebook folder's). A `command`
is a stdio server (a subprocess), a `url` a streamable HTTP one. `${NAME}` (or `${env:NAME}`) in `args`,
`env`, `url` and `headers` is taken from the kernel's environment; nothing else of it reaches a stdio
server beyond the SDK's safe defaults (PATH, HOME, …): the AiHubMix key goes to a server only where the
config names it.

Each server's tools become `McpTool`s: `Tool`s whose function calls the server, so the tool loop runs them
as it runs Python functions (approval, step blocks, `--max-steps`, `Response.steps`, interrupts). Their
names are the servers' own when unique, `server__tool` when two servers (or a Python tool) share one, and
always within the API's rule `^[a-zA-Z0-9_-]{1,64}$`; the `inputSchema` is sent as it is. A result's text,
structured content and images (named, with their type and size) become the text the model gets back.

The `mcp` SDK is async: every session lives on one event loop in a background thread (`McpServers`, one
per kernel on the Session), and the calling thread waits on it with `run_coroutine_threadsafe(...)`, in
short slices so that an interrupt stops the wait at once (and cancels the call). A server starts on first
use and is kept: later cells reuse its session, a server that died (or whose config changed) is started
again, and all are closed when the kernel exits (atexit).

What can go wrong before anything is sent is an `McpError` (one line): an unknown name, an mcp.json that
is not JSON (its path and line), a command that does not exist, a server that exits or does not answer
`initialize` / `tools/list` within `settings.mcp_start_timeout` (with the end of its stderr). During a
call, a tool error, a server that crashes or one that does not answer within `settings.tool_timeout` is
the call's error text, which goes back to the model as a failing Python tool's does.
"""

from __future__ import annotations

import atexit
import collections
import hashlib
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.exceptions import McpError
from ..core.tools import Tool

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable, Coroutine

__all__ = ["CONFIG_FILE", "INSTALL_HINT", "McpError", "McpServers", "McpTool", "McpToolError", "ServerConfig",
           "call_result_text", "load_servers", "mcp_tools", "servers", "servers_listing"]

CONFIG_FILE = "mcp.json"
INSTALL_HINT = "pip install 'aihubmix-magic[mcp]'"
SEPARATOR = "__"  # server__tool, when two servers offer a tool of the same name
STDERR_KEPT = 8192  # bytes of a stdio server's stderr kept for error messages
_WAIT_SLICE = 0.1  # seconds between looks at a pending call: an interrupt is taken at once
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_VARIABLE = re.compile(r"\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)\}")


class McpToolError(Exception):
    """A tool call that did not give a result: its message is what the model is told."""


# -- the configuration -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ServerConfig:
    """One entry of `mcpServers`. `env` and `headers` are never shown (only their names)."""

    name: str
    path: Path  # the mcp.json it came from
    where: str  # "notebook folder" or "personal"
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    cwd: str | None = None
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def transport(self) -> str:
        return "stdio" if self.command is not None else "http"

    def fingerprint(self) -> str:
        """Changes when anything that reaches the server changes (a server is started again then)."""
        parts = [self.transport, self.command, list(self.args), sorted(self.env.items()), self.cwd, self.url,
                 sorted(self.headers.items())]
        return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()

    def describe(self) -> str:
        """How it is run, for `%aihubmix mcp`: the command and its arguments, or the URL; env and header
        names only."""
        if self.command is not None:
            text = " ".join([self.command, *self.args])
            if self.env:
                text += f" (env: {', '.join(sorted(self.env))})"
        else:
            text = str(self.url)
            if self.headers:
                text += f" (headers: {', '.join(sorted(self.headers))})"
        return text


def load_servers() -> dict[str, ServerConfig]:
    """Every configured server by name, the notebook folder's first (McpError for an unreadable mcp.json)."""
    from ..store.prompts import config_places

    found: dict[str, ServerConfig] = {}
    for where, folder in config_places():
        path = folder / CONFIG_FILE
        if not path.is_file():
            continue
        for name, config in _read_config(path, where).items():
            found.setdefault(name, config)
    return found


def _read_config(path: Path, where: str) -> dict[str, ServerConfig]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise McpError(f"{path} cannot be read: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise McpError(f"{path} is not valid JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    if not isinstance(data, dict) or not isinstance(data.get("mcpServers"), dict):
        hint = ' (VS Code\'s "servers" key is spelled "mcpServers" here)' if isinstance(data, dict) and "servers" in data \
            else ""
        raise McpError(f'{path}: expected {{"mcpServers": {{"NAME": {{"command": …}} or {{"url": …}}}}}}{hint}')
    servers: dict[str, ServerConfig] = {}
    for name, entry in data["mcpServers"].items():
        line = _line_of(text, name)
        problem = _check_entry(entry)
        if problem is not None:
            raise McpError(f"{path}, line {line}: server {name!r}: {problem}")
        servers[name] = ServerConfig(
            name=name, path=path, where=where, command=entry.get("command"), args=tuple(entry.get("args") or ()),
            env=dict(entry.get("env") or {}), cwd=entry.get("cwd"), url=entry.get("url"),
            headers=dict(entry.get("headers") or {}))
    return servers


def _check_entry(entry: Any) -> str | None:
    """What is wrong with one `mcpServers` entry (None if it can be used)."""
    if not isinstance(entry, dict):
        return "an entry is an object with a command (stdio) or a url (streamable HTTP)"
    kind = entry.get("type") or entry.get("transport")
    if kind in ("sse",):
        return "the old SSE transport is not supported: use the server's streamable HTTP URL (often …/mcp)"
    command, url = entry.get("command"), entry.get("url")
    if (command is None) == (url is None):
        return "give either \"command\" (a stdio server) or \"url\" (a streamable HTTP server)"
    if command is not None and (not isinstance(command, str) or not command.strip()):
        return "\"command\" must be a program name or path"
    if url is not None and (not isinstance(url, str) or not re.match(r"https?://", url)):
        return "\"url\" must be an http:// or https:// URL"
    args = entry.get("args", [])
    if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
        return "\"args\" must be a list of strings"
    for key in ("env", "headers"):
        value = entry.get(key, {})
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            return f"\"{key}\" must be an object of strings"
    if entry.get("cwd") is not None and not isinstance(entry.get("cwd"), str):
        return "\"cwd\" must be a folder path"
    return None


def _line_of(text: str, name: str) -> int:
    at = text.find(json.dumps(name))
    return text.count("\n", 0, at) + 1 if at >= 0 else 1


def _expand(value: str, config: ServerConfig) -> str:
    """`${NAME}` and `${env:NAME}` from the kernel's environment (McpError when it is not set)."""
    def variable(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise McpError(f"MCP server {config.name!r} ({config.path}): ${{{name}}} is not set in the environment")
        return os.environ[name]
    return _VARIABLE.sub(variable, value)


def _require_sdk() -> None:
    import importlib.util

    try:
        found = importlib.util.find_spec("mcp") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise McpError(f"MCP servers need the MCP SDK: {INSTALL_HINT}")


# -- tools -------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class McpTool(Tool):
    """A tool of an MCP server: `name` is what the model sees, `remote_name` the server's own."""

    server: str = ""
    remote_name: str = ""


def _api_name(text: str) -> str:
    """`text` within the API's name rule: other characters become `_`, and a name longer than 64 keeps its
    start and a short hash (so two long names stay apart)."""
    name = re.sub(r"[^A-Za-z0-9_-]", "_", text) or "tool"
    if len(name) > 64:
        name = name[:55] + "_" + hashlib.sha256(text.encode()).hexdigest()[:8]
    return name


def _offered_names(listed: list[tuple[str, str]], taken: Iterable[str]) -> list[str]:
    """The names the model sees for (server, tool) pairs: the tool's own when only one server offers it (and
    no Python tool has it), else server__tool."""
    taken = set(taken)
    counts = collections.Counter(_api_name(tool) for _, tool in listed)
    names: list[str] = []
    for server, tool in listed:
        plain = _api_name(tool)
        name = plain if counts[plain] == 1 and plain not in taken else _api_name(f"{server}{SEPARATOR}{tool}")
        while name in taken:  # two sanitized names met: keep them apart
            name = _api_name(name[:60] + "_" + hashlib.sha256(name.encode()).hexdigest()[:3])
        taken.add(name)
        names.append(name)
    return names


def call_result_text(result: Any) -> str:
    """A `CallToolResult` as the text the model gets: text blocks as they are, images and audio named with
    their type and size, resources by their text or URI, structured content as JSON when the text does
    not already say it. McpToolError when the server flagged an error."""
    parts: list[str] = []
    for block in _get(result, "content", "content") or []:
        kind = _get(block, "type", "type")
        if kind == "text":
            parts.append(str(_get(block, "text", "text")))
        elif kind in ("image", "audio"):
            data = _get(block, "data", "data") or ""
            size = len(data) * 3 // 4 - str(data).count("=", -2)
            parts.append(f"[{kind}: {_get(block, 'mime_type', 'mimeType')}, {size:,} bytes, not shown to the model]")
        elif kind == "resource_link":
            parts.append(f"[resource link: {_get(block, 'name', 'name')} {_get(block, 'uri', 'uri')}]")
        elif kind == "resource":
            resource = _get(block, "resource", "resource")
            text = _get(resource, "text", "text")
            uri = _get(resource, "uri", "uri")
            parts.append(str(text) if text is not None else
                         f"[resource: {uri} ({_get(resource, 'mime_type', 'mimeType') or 'binary'}), not shown]")
        else:
            parts.append(f"[{kind} content, not shown]")
    structured = _get(result, "structured_content", "structuredContent")
    if structured is not None and not _said(parts, structured):
        parts.append(json.dumps(structured, ensure_ascii=False, default=str))
    text = "\n\n".join(parts)
    if _get(result, "is_error", "isError"):
        raise McpToolError(text or "the tool reported an error (no message)")
    return text


def _get(value: Any, name: str, camel: str) -> Any:
    """A field of an SDK object (snake_case in mcp 2, camelCase in 1.x) or of a dict."""
    if isinstance(value, dict):
        return value.get(camel, value.get(name))
    return getattr(value, name, getattr(value, camel, None))


def _said(parts: list[str], structured: Any) -> bool:
    """Whether the text blocks already say the structured content: its JSON, or (the SDK's wrapping of a
    plain return value) the value of `{"result": value}`."""
    values = [structured]
    if isinstance(structured, dict) and list(structured) == ["result"]:
        values.append(structured["result"])
    for part in parts:
        if any(part == value for value in values):
            return True
        try:
            parsed = json.loads(part)
        except ValueError:
            continue
        if any(parsed == value for value in values):
            return True
    return False


def _scrub(text: str) -> str:
    """`text` with this session's API keys masked (a server's stderr could quote one it was given)."""
    from ..core.protocol import mask_key
    from . import state as _session

    for key in _session.current().keys():
        text = text.replace(key, mask_key(key))
    return text


def first_line(text: str | None) -> str:
    return next((line.strip() for line in (text or "").splitlines() if line.strip()), "")


# -- the servers -------------------------------------------------------------------------------------------
class _StderrTail:
    """A stdio server's stderr, read by a thread from a pipe: the last STDERR_KEPT bytes are kept."""

    def __init__(self) -> None:
        read, write = os.pipe()
        self.file = os.fdopen(write, "w")  # handed to the subprocess, closed here once it started
        self._kept: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._lock = threading.Lock()
        self.ended = threading.Event()
        threading.Thread(target=self._read, args=(read,), name="aihubmix-mcp-stderr", daemon=True).start()

    def _read(self, descriptor: int) -> None:
        try:
            while chunk := os.read(descriptor, 4096):
                with self._lock:
                    self._kept.append(chunk)
                    self._size += len(chunk)
                    while self._size - len(self._kept[0]) >= STDERR_KEPT:
                        self._size -= len(self._kept.popleft())
        except OSError:
            pass
        finally:
            os.close(descriptor)
            self.ended.set()

    def close_ours(self) -> None:
        if not self.file.closed:
            self.file.close()

    def tail(self, lines: int = 3) -> str:
        """The last lines of what the server wrote so far, as one line."""
        with self._lock:
            text = b"".join(self._kept).decode("utf-8", "replace")
        kept = [" ".join(line.split()) for line in text.splitlines() if line.strip()][-lines:]
        return _scrub(" | ".join(kept)[-400:])


class _Connection:
    """One server's session, run by a task of its own on the background loop (the SDK's context managers
    must be entered and left by one task)."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.fingerprint = config.fingerprint()
        self.session: Any = None
        self.tools: list[Any] = []
        self.dead = False
        self.stderr: _StderrTail | None = None
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    def label(self) -> str:
        return f"MCP server {self.config.name!r}"

    def with_stderr(self, text: str) -> str:
        tail = self.stderr.tail() if self.stderr is not None else ""
        return f"{text}; its stderr ends: {tail}" if tail else text

    async def stderr_ended(self, wait: float) -> None:
        """Wait (at most `wait` s, off the loop's thread) until a stdio server's stderr is read to its end:
        a server that exited has then said all it had to say."""
        import asyncio

        if self.stderr is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.stderr.ended.wait, wait)

    async def start(self, timeout: float) -> None:
        import asyncio

        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run(ready))
        try:
            await asyncio.wait_for(asyncio.shield(ready), timeout)
        except asyncio.TimeoutError:
            ready.cancel()
            await self.close()
            raise McpError(self.with_stderr(
                f"{self.label()} did not answer initialize and tools/list within {timeout:g} s "
                "(settings.mcp_start_timeout)")) from None
        except McpError:
            await self.close()
            raise
        except asyncio.CancelledError:  # the cell was interrupted while the server started
            ready.cancel()
            await self.close()
            raise

    async def _run(self, ready: asyncio.Future[None]) -> None:
        import asyncio
        import importlib
        from contextlib import AsyncExitStack

        from mcp import ClientSession

        try:
            async with AsyncExitStack() as stack:
                read, write = await stack.enter_async_context(self._transport(stack))
                if self.stderr is not None:
                    self.stderr.close_ours()
                session = await stack.enter_async_context(ClientSession(read, write))
                await session.initialize()
                self.tools = await _list_tools(session)
                self.session = session
                ready.set_result(None)
                if any(_get(tool, "output_schema", "outputSchema") for tool in self.tools):
                    # the SDK checks structured results with jsonschema, imported on the first such call
                    # (seconds on a busy machine): import it now, while the cell goes on
                    asyncio.get_running_loop().run_in_executor(None, importlib.import_module, "jsonschema")
                assert self._stop is not None
                await self._stop.wait()
        except BaseException as exc:  # noqa: B036 - the task's end, whatever it is, is reported to start()
            self.dead = True
            if not ready.done():
                if isinstance(exc, Exception):
                    await self.stderr_ended(1.0 if _is_closed(_leaf(exc)) else 0.2)
                if not ready.done():
                    ready.set_exception(McpError(self._start_failure(exc)))
            if not isinstance(exc, Exception):
                raise
        finally:
            self.dead = True
            if self.stderr is not None:
                self.stderr.close_ours()

    def _transport(self, stack: Any) -> Any:
        """The SDK's transport for this server (an async context manager). An HTTP client of ours is
        closed by `stack` (the SDK leaves a client it was given open)."""
        config = self.config
        if config.command is not None:
            from mcp import StdioServerParameters
            from mcp.client.stdio import stdio_client

            command = _expand(config.command, config)
            program = Path(command).expanduser()
            if os.sep in command or (os.altsep and os.altsep in command):
                if not program.is_file():
                    raise McpError(f"{self.label()}: the command {command!r} does not exist")
            elif shutil.which(command) is None:
                raise McpError(f"{self.label()}: the command {command!r} is not found (is it installed and on "
                               "PATH?)")
            self.stderr = _StderrTail()
            parameters = StdioServerParameters(
                command=str(program) if os.sep in command else command,
                args=[_expand(arg, config) for arg in config.args],
                env={name: _expand(value, config) for name, value in config.env.items()} or None,
                cwd=str(Path(_expand(config.cwd, config)).expanduser()) if config.cwd else None)
            return stdio_client(parameters, errlog=self.stderr.file)
        from mcp.client.streamable_http import streamable_http_client

        headers = {name: _expand(value, config) for name, value in config.headers.items()}
        client = _http_client(headers)
        stack.push_async_callback(client.aclose)
        return streamable_http_client(_expand(str(config.url), config), http_client=client)

    def _start_failure(self, exc: BaseException) -> str:
        leaf = _leaf(exc)
        if isinstance(leaf, McpError):
            return str(leaf)
        if isinstance(leaf, OSError) and self.config.command is not None and not _is_connection_error(leaf):
            return f"{self.label()} cannot be started: {leaf}"
        message = " ".join(str(leaf).split()) or type(leaf).__name__
        if _is_closed(leaf):
            what = "exited before it answered initialize" if self.config.command is not None else \
                "closed the connection before it answered initialize"
            return self.with_stderr(f"{self.label()} {what}")
        where = f" at {self.config.url}" if self.config.url else ""
        return self.with_stderr(f"{self.label()}{where} could not be started: {type(leaf).__name__}: {message}")

    async def alive(self) -> bool:
        """Whether the session still answers (a ping, at most 5 s)."""
        import asyncio

        if self.dead or self.session is None or getattr(getattr(self.session, "_dispatcher", None), "_closed", False):
            return False
        try:
            await asyncio.wait_for(self.session.send_ping(), 5.0)
        except Exception:
            return False
        return True

    async def call(self, name: str, arguments: dict[str, Any]) -> str:
        if self.dead or self.session is None:
            raise McpToolError(f"the {self.label()} is not running (it stopped earlier); it starts again in the "
                               "next cell")
        try:
            result = await self.session.call_tool(name, arguments)
        except Exception as exc:
            leaf = _leaf(exc)
            if _is_closed(leaf):
                self.dead = True
                await self.stderr_ended(1.0)
                raise McpToolError(self.with_stderr(f"the {self.label()} stopped during the call")) from None
            message = " ".join(str(leaf).split()) or type(leaf).__name__
            raise McpToolError(f"the {self.label()} answered with an error: {message}") from None
        return call_result_text(result)

    async def close(self) -> None:
        """Stop the session (a running one leaves its context managers in order; one still starting is
        cancelled); the SDK closes the server's stdin, then terminates it."""
        import asyncio

        self.dead = True
        task = self._task
        if task is None or task.done():
            return
        if self.session is not None and self._stop is not None:
            self._stop.set()
        else:
            task.cancel()
        await asyncio.wait({task}, timeout=8.0)
        if not task.done():
            task.cancel()


async def _list_tools(session: Any) -> list[Any]:
    tools: list[Any] = []
    cursor = None
    for _ in range(100):  # a server that pages forever cannot hang a cell
        if cursor is None:
            listing = await session.list_tools()
        else:
            from mcp.types import PaginatedRequestParams

            listing = await session.list_tools(params=PaginatedRequestParams(cursor=cursor))
        tools.extend(listing.tools)
        cursor = _get(listing, "next_cursor", "nextCursor")
        if not cursor:
            break
    return tools


def _http_client(headers: dict[str, str]) -> Any:
    try:
        from mcp.shared._httpx_utils import create_mcp_http_client

        return create_mcp_http_client(headers=headers)
    except ImportError:  # pragma: no cover - another SDK layout
        import httpx2

        return httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=300.0))


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside exception groups (anyio's task groups wrap what failed)."""
    while getattr(exc, "exceptions", None):  # a (Base)ExceptionGroup, builtin or the 3.10 backport
        exc = exc.exceptions[0]  # type: ignore[attr-defined]
    return exc


def _is_closed(exc: BaseException) -> bool:
    code = getattr(getattr(exc, "error", None), "code", getattr(exc, "code", None))
    return code == -32000 or "Connection closed" in str(exc)


def _is_connection_error(exc: BaseException) -> bool:
    return isinstance(exc, (ConnectionError, TimeoutError))


class McpServers:
    """The kernel's MCP sessions, on one background event loop (made on first use, closed at exit)."""

    def __init__(self) -> None:
        self._connections: dict[str, _Connection] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # the loop ------------------------------------------------------------------------------------------
    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        import asyncio

        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="aihubmix-mcp", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
                atexit.register(self.close)
            return self._loop

    def _wait(self, coroutine: Coroutine[Any, Any, Any], timeout: float | None) -> Any:
        """Run `coroutine` on the loop and wait for it here, in slices (an interrupt cancels it);
        TimeoutError (after cancelling it) when `timeout` passes."""
        import asyncio
        import concurrent.futures

        future = asyncio.run_coroutine_threadsafe(coroutine, self._ensure_loop())
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                left = _WAIT_SLICE if deadline is None else min(_WAIT_SLICE, deadline - time.monotonic())
                if left <= 0:
                    future.cancel()
                    raise TimeoutError
                try:
                    return future.result(left)
                except concurrent.futures.TimeoutError:
                    continue
        except KeyboardInterrupt:
            future.cancel()
            raise

    # servers -------------------------------------------------------------------------------------------
    def connect(self, names: Iterable[str]) -> list[_Connection]:
        """The sessions of the servers `names` (started, or started again), in order; McpError names what
        cannot be used (an unknown name before any server starts)."""
        from .settings import settings

        _require_sdk()
        wanted = list(dict.fromkeys(names))
        configured = load_servers()
        unknown = [name for name in wanted if name not in configured]
        if unknown:
            known = ", ".join(sorted(configured)) or f"none: add them to .aihubmix/{CONFIG_FILE}"
            raise McpError(f"No MCP server named {', '.join(map(repr, unknown))} in {CONFIG_FILE} (configured: "
                           f"{known}).")
        return [self._connect(configured[name], settings.mcp_start_timeout) for name in wanted]

    def _connect(self, config: ServerConfig, timeout: float) -> _Connection:
        async def ready() -> _Connection:
            current = self._connections.get(config.name)
            if current is not None:
                if current.fingerprint == config.fingerprint() and await current.alive():
                    return current
                await current.close()
                self._connections.pop(config.name, None)
            connection = _Connection(config)
            await connection.start(timeout)
            self._connections[config.name] = connection
            return connection

        try:
            connection: _Connection = self._wait(ready(), timeout + 15.0)
        except TimeoutError:
            raise McpError(f"MCP server {config.name!r} did not start within {timeout:g} s") from None
        return connection

    def tools(self, names: Iterable[str], *, taken: Iterable[str] = ()) -> list[McpTool]:
        """The tools of the servers `names`, as McpTools (named apart from each other and from `taken`)."""
        connections = self.connect(names)
        listed = [(connection, tool) for connection in connections for tool in connection.tools]
        offered = _offered_names([(c.config.name, str(t.name)) for c, t in listed], taken)
        tools: list[McpTool] = []
        for name, (connection, tool) in zip(offered, listed, strict=True):
            schema = _get(tool, "input_schema", "inputSchema")
            parameters = dict(schema) if isinstance(schema, dict) else {"type": "object", "properties": {}}
            parameters.setdefault("type", "object")
            tools.append(McpTool(name=name, description=str(_get(tool, "description", "description") or ""),
                                 parameters=parameters, function=self._caller(connection.config.name, str(tool.name)),
                                 server=connection.config.name, remote_name=str(tool.name)))
        return tools

    def _caller(self, server: str, tool: str) -> Callable[..., str]:
        def call(**arguments: Any) -> str:
            return self.call(server, tool, arguments)
        call.__name__ = tool
        return call

    def call(self, server: str, tool: str, arguments: dict[str, Any]) -> str:
        """Call `tool` on `server` from this thread, waiting at most `settings.tool_timeout` seconds;
        McpToolError when it gives no result (the message is for the model)."""
        from .settings import settings

        connection = self._connections.get(server)
        if connection is None:
            raise McpToolError(f"the MCP server {server!r} is not running")
        timeout = settings.tool_timeout
        try:
            text: str = self._wait(connection.call(tool, arguments), timeout)
        except TimeoutError:
            raise McpToolError(f"no answer from the MCP server {server!r} within {timeout:g} s "
                               "(settings.tool_timeout); the call was cancelled") from None
        return text

    def close(self) -> None:
        """Close every session and stop the loop (at kernel exit; the servers' processes end)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return

        async def close_all() -> None:
            import asyncio

            await asyncio.gather(*(c.close() for c in self._connections.values()), return_exceptions=True)
            self._connections.clear()

        try:
            self._wait(close_all(), 15.0)
        except (TimeoutError, RuntimeError):
            pass
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(5.0)
        if not loop.is_running():
            loop.close()
        self._loop = None
        atexit.unregister(self.close)


def servers() -> McpServers:
    """This kernel's MCP servers (kept on the Session)."""
    from . import state as _session

    session = _session.current()
    if session.mcp is None:
        session.mcp = McpServers()
    return session.mcp


def mcp_tools(*names: str, taken: Iterable[str] = ()) -> list[McpTool]:
    """The tools of the MCP servers `names` (from mcp.json), started if needed: give them as `tools=` to
    `Client.chat` / `Client.respond` / `batch`. McpError if a server cannot be used."""
    flat = [name.strip() for group in names for name in str(group).split(",") if name.strip()]
    if not flat:
        raise McpError("Name at least one MCP server (from mcp.json).")
    return servers().tools(flat, taken=taken)


# -- %aihubmix mcp -----------------------------------------------------------------------------------------
def servers_listing(scrub: Callable[[str], str] | None = None) -> dict[str, str]:
    """`%aihubmix mcp`: each configured server, where it was found, whether it starts and its tools (name and
    the first line of the description), as Markdown and text. Header and env values are never shown, and
    this session's API keys are masked (`scrub`, by default) wherever a server's text could quote one."""
    scrub = scrub or _scrub
    from ..store.prompts import config_places

    _require_sdk()
    places = [(where, folder / CONFIG_FILE) for where, folder in config_places()]
    configured = load_servers()
    if not configured:
        looked = " and ".join(str(path) for _, path in places)
        text = (f'No MCP servers configured: add {{"mcpServers": {{"NAME": {{"command": …, "args": […]}}}}}} to '
                f"{looked}.")
        return {"text/markdown": text, "text/plain": text}
    hub = servers()
    markdown: list[str] = []
    plain: list[str] = []
    for name, config in configured.items():
        try:
            (connection,) = hub.connect([name])
        except McpError as exc:
            status, tools = f"cannot start: {exc}", []
        else:
            tools = connection.tools
            status = f"running, {len(tools)} tool{'s' * (len(tools) != 1)}"
        how = scrub(config.describe())
        markdown.append(f"**{name}** ({config.transport}, {config.where}: `{config.path}`) — {scrub(status)}\n\n"
                        f"`{how}`")
        plain.append(f"{name}  ({config.transport}, {config.where}: {config.path}) — {scrub(status)}\n  {how}")
        for tool in tools:
            line = scrub(first_line(_get(tool, "description", "description")))
            markdown[-1] += f"\n- `{tool.name}` — {line}" if line else f"\n- `{tool.name}`"
            plain.append(f"  - {tool.name}" + (f": {line}" if line else ""))
    return {"text/markdown": "\n\n".join(markdown), "text/plain": "\n".join(plain)}

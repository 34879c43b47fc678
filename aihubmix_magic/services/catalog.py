"""AiHubMix's public model catalog: prices and capabilities per model, fetched once and kept for a day.

    GET https://aihubmix.com/api/v1/models      (no key; the base URL with its trailing /v1 replaced)
    -> {"success": true, "data": [{"model_id", "desc", "types", "features", "input_modalities",
                                   "max_output", "context_length", "pricing": {"input", "output", ...}}]}

- **When**: on first need (a prompt cell, `%aihubmix models`, a footer's cost, the panel), in a background
  thread. A prompt cell waits for it at most `PROMPT_WAIT` seconds and then goes on without it; the fetch
  finishes in the background and later cells (and the ledger) use it. The key is never sent to it.
- **Disk cache**: the raw catalog, one file per catalog URL, in `<cache directory>/catalog/` (the directory
  of the response cache, see `_cache.default_cache_path`), directory 0700 and files 0600, fresh for
  `CACHE_TTL` seconds. `%aihubmix models --refresh` fetches it again. A failed fetch falls back to an
  older file if there is one (prices a few days old beat no prices), and is retried after `RETRY_AFTER`.
- **Tolerant parsing** (`parse_catalog`): numbers or numeric strings ("1.5", "$1.5", "128,000", "128K"),
  lists or comma-separated strings, null or absent prices, unknown fields ignored, entries without a
  `model_id` skipped. A body that is not a catalog at all (not JSON, `success: false` with HTTP 200, no
  `data` list) means: no prices and no capabilities, never an error in a prompt cell.
- **Capabilities** (`ModelInfo`): `tools` and `function_calling` count as the same thing (the catalog
  lists either), empty metadata means "unknown", never "lacks". `request_warnings` turns what a cell asks
  for into one-line warnings when the catalog says the model lacks it; the request still goes.

No httpx (nor anything that imports it) at import time: it is imported inside the fetch.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..core.prices import (
    FEATURES,
    MODALITIES,
    CatalogError,
    ModelInfo,
    estimate_tokens,
    find_model,
    format_price,
    markdown_dollars,
    parse_catalog,
    parse_model,
    shorten,
)

if TYPE_CHECKING:
    from ..core.request import Request

__all__ = [
    "CACHE_TTL",
    "Catalog",
    "CatalogError",
    "FEATURES",
    "MODALITIES",
    "ModelInfo",
    "PROMPT_WAIT",
    "catalog",
    "catalog_url",
    "cell_warnings",
    "estimate_tokens",
    "find_model",
    "forget",
    "lookup",
    "model_cell",
    "models_listing",
    "parse_catalog",
    "parse_model",
    "parse_models_options",
    "request_warnings",
    "root_url",
]

CACHE_TTL = 24 * 3600.0  # seconds a catalog on disk (or in memory) stays fresh
RETRY_AFTER = 300.0  # seconds before a failed fetch is tried again on its own
PROMPT_WAIT = 1.0  # the longest a prompt cell (or a Response.cost) waits for a catalog being fetched
COMMAND_WAIT = 15.0  # `%aihubmix models`, an estimate: the user asked for the catalog, wait for the fetch
FETCH_TIMEOUT = 10.0  # read timeout of the fetch itself
CONNECT_TIMEOUT = 5.0


# -- where it is --------------------------------------------------------------------------------------------
def root_url(base_url: str) -> str:
    """The API's host root: the base URL without its trailing /v1 (`https://aihubmix.com/v1` -> `https://aihubmix.com`);
    a base URL that does not end in /v1 gives its scheme and host."""
    base = base_url.rstrip("/")
    if base.endswith("/v1"):
        return base[:-3]
    parts = urlsplit(base)
    return f"{parts.scheme}://{parts.netloc}"


def catalog_url(base_url: str, override: str = "") -> str:
    """The catalog's URL: `override` (settings.catalog_url) if set, else the root URL + /api/v1/models."""
    return override.strip() or root_url(base_url) + "/api/v1/models"


# What the session's settings say, as the session layer passes it (`configure`, called by
# `session.settings`): the catalog's URL and the response cache's path (the catalog is kept beside it).
# Without a session: AiHubMix's own catalog, and the default cache directory.
def _default_url() -> str:
    from ..core.protocol import DEFAULT_BASE_URL

    return catalog_url(DEFAULT_BASE_URL)


def _default_cache_path() -> Path:
    from ..store.cache import default_cache_path

    return default_cache_path()


_current_url: Callable[[], str] = _default_url
_cache_path: Callable[[], Path] = _default_cache_path


def configure(*, url: Callable[[], str], cache_path: Callable[[], Path]) -> None:
    """Where `catalog()` (no URL given) and the disk cache are: functions of the session's settings."""
    global _current_url, _cache_path
    _current_url, _cache_path = url, cache_path


def _cache_dir() -> Path:
    return _cache_path().parent / "catalog"


def _cache_file(url: str) -> Path:
    import hashlib  # here, not at import: the settings load this module at %load_ext

    return _cache_dir() / f"catalog-{hashlib.sha256(url.encode()).hexdigest()[:24]}.json"


def _read_disk(url: str) -> tuple[object, float] | None:
    """(the raw catalog, when it was fetched) from the disk cache, or None."""
    try:
        stored = json.loads(_cache_file(url).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict) or stored.get("url") != url or not isinstance(stored.get("fetched_at"), (int, float)):
        return None
    return stored.get("body"), float(stored["fetched_at"])


def _write_disk(url: str, body: object, fetched_at: float) -> None:
    """Atomically, directory 0700 and file 0600; a cache that cannot be written is no error."""
    directory = _cache_dir()
    try:
        if not directory.parent.exists():
            os.makedirs(directory.parent, mode=0o700, exist_ok=True)
        directory.mkdir(mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)
        target = _cache_file(url)
        temporary = directory / f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp"
        data = json.dumps({"url": url, "fetched_at": fetched_at, "body": body}, ensure_ascii=False).encode()
        handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(handle, data)
        finally:
            os.close(handle)
        os.chmod(temporary, 0o600)
        os.replace(temporary, target)
    except OSError:
        pass


def _download(url: str) -> object:
    """GET the catalog (no key, no cookies) and return its JSON; CatalogError with a one-line reason."""
    import httpx

    try:
        with httpx.Client(timeout=httpx.Timeout(FETCH_TIMEOUT, connect=CONNECT_TIMEOUT),
                          follow_redirects=True) as http:
            response = http.get(url, headers={"Accept": "application/json"})
            content = response.content
    except httpx.TimeoutException:
        raise CatalogError(f"{url} did not answer in time") from None
    except httpx.HTTPError as exc:
        raise CatalogError(f"cannot reach {url} ({type(exc).__name__})") from None
    if response.status_code >= 400:
        raise CatalogError(f"HTTP {response.status_code} from {url}")
    try:
        return json.loads(content)
    except ValueError:
        kind = response.headers.get("content-type", "no content type").split(";")[0]
        raise CatalogError(f"{url} did not answer with JSON ({kind})") from None


# -- the session's catalog ----------------------------------------------------------------------------------
class Catalog:
    """One catalog URL's state: the models once known, the last error, a background fetch."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.models: dict[str, ModelInfo] | None = None
        self.error: str | None = None
        self.fetched_at: float | None = None  # when the models in use were fetched (wall clock)
        self.source: str | None = None  # "network", "disk" or "disk, stale"
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self._fetching = False
        self._fetch_started = 0.0  # time.monotonic() when the current fetch began
        self._failed_at: float | None = None
        self._disk_read = False
        self._stale: tuple[dict[str, ModelInfo], float] | None = None

    def __repr__(self) -> str:
        state = f"{len(self.models)} models" if self.models is not None else (self.error or "not loaded")
        return f"<Catalog {self.url} {state}>"

    @property
    def loading(self) -> bool:
        return self._fetching

    def ensure(self, wait: float = 0.0) -> dict[str, ModelInfo] | None:
        """The models if known; starts a background fetch when needed (none yet, expired, or a failure
        older than RETRY_AFTER) and waits for it at most `wait` seconds. A short wait (up to PROMPT_WAIT, what
        a cell does) ends at most PROMPT_WAIT after the fetch began, however many checks a cell makes.
        Never raises."""
        with self._lock:
            if self.models is None and not self._disk_read:
                self._disk_read = True
                self._load_disk()
            expired = self.fetched_at is not None and not 0 <= time.time() - self.fetched_at < CACHE_TTL
            failed_recently = self._failed_at is not None and time.monotonic() - self._failed_at < RETRY_AFTER
            if (self.models is None or expired) and not self._fetching and not failed_recently:
                self._start()
        if wait > 0 and self._fetching:
            if wait <= PROMPT_WAIT:
                wait = min(wait, self._fetch_started + PROMPT_WAIT - time.monotonic())
            if wait > 0:
                self._idle.wait(wait)
        return self.models

    def refresh(self, wait: float = COMMAND_WAIT) -> dict[str, ModelInfo] | None:
        """Fetch again now, whatever the disk cache holds (`%aihubmix models --refresh`)."""
        with self._lock:
            self._disk_read = True
            if not self._fetching:
                self._start()
        self._idle.wait(wait)
        return self.models

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a fetch in progress; True when none is running any more."""
        return self._idle.wait(timeout)

    def describe(self) -> str:
        """One quiet line: where the prices come from, or why there are none."""
        if self.models is not None:
            age = _age(time.time() - (self.fetched_at or time.time()))
            where = f"fetched {age}" if self.source == "network" else f"cached on disk, fetched {age}"
            if self.error:  # a newer fetch failed: these are older prices
                where += f"; fetching it again failed: {self.error}"
            return f"Prices and capabilities from AiHubMix's model catalog ({where})."
        if self._fetching:
            return f"The model catalog ({self.url}) is still loading: no prices or capabilities yet."
        return f"Model catalog unavailable ({self.error or 'not fetched'}): no prices or capabilities."

    # -- inside the lock ------------------------------------------------------------------------------------
    def _load_disk(self) -> None:
        stored = _read_disk(self.url)
        if stored is None:
            return
        body, fetched_at = stored
        try:
            models = parse_catalog(body)
        except CatalogError:
            return
        if 0 <= time.time() - fetched_at < CACHE_TTL:
            self.models, self.fetched_at, self.source = models, fetched_at, "disk"
        else:
            self._stale = (models, fetched_at)

    def _start(self) -> None:
        self._fetching = True
        self._fetch_started = time.monotonic()
        self._idle.clear()
        threading.Thread(target=self._fetch, name="aihubmix-catalog", daemon=True).start()

    # -- the background thread ------------------------------------------------------------------------------
    def _fetch(self) -> None:
        try:
            body = _download(self.url)
            models = parse_catalog(body)
            fetched_at = time.time()
            _write_disk(self.url, body, fetched_at)
            with self._lock:
                self.models, self.fetched_at, self.source = models, fetched_at, "network"
                self.error = self._failed_at = self._stale = None
        except Exception as exc:  # anything at all: the catalog is optional
            reason = str(exc) if isinstance(exc, CatalogError) else f"{type(exc).__name__}: {shorten(str(exc))}"
            with self._lock:
                self.error = reason
                self._failed_at = time.monotonic()
                if self.models is None and self._stale is not None:
                    self.models, self.fetched_at = self._stale
                    self.source = "disk, stale"
        finally:
            with self._lock:
                self._fetching = False
                self._idle.set()


def _age(seconds: float) -> str:
    if seconds < 90:
        return "just now"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} days ago"


_catalogs: dict[str, Catalog] = {}
_registry_lock = threading.Lock()


def catalog(url: str | None = None) -> Catalog:
    """The Catalog of `url`, by default the one the session's settings point at (`configure`; one object
    per URL)."""
    if url is None:
        url = _current_url()
    with _registry_lock:
        found = _catalogs.get(url)
        if found is None:
            found = _catalogs[url] = Catalog(url)
        return found


def forget() -> None:
    """Drop every catalog held in memory (the disk cache stays): the next need reads or fetches again."""
    with _registry_lock:
        _catalogs.clear()


def lookup(model: str, wait: float = 0.0) -> ModelInfo | None:
    """The session catalog's entry for `model`, or None (no catalog, or not listed). Never raises."""
    try:
        models = catalog().ensure(wait)
    except Exception:  # e.g. an unusable base URL: no catalog, no prices
        return None
    return find_model(models, model) if models else None


def request_warnings(model: str, content: object, *, system: str | None = None, images: bool = False,
                     reasoning_effort: str | None = None, schema: bool = False,
                     budget_set: bool = False, wait: float = PROMPT_WAIT) -> list[str]:
    """One line per thing the cell asks for that the catalog says `model` lacks (the request still goes),
    and, with a budget set (`budget_set`), a line when the model has no price (its cost cannot be counted)."""
    info = lookup(model, wait)
    notes = []
    if info is not None:
        if images and info.input_modalities and not info.vision:
            notes.append(f"{model} takes {', '.join(sorted(info.input_modalities))} input, not images, says the "
                         "model catalog; the image is sent anyway.")
        if reasoning_effort and reasoning_effort != "none" and info.features and not info.reasoning:
            notes.append(f"{model} has no `thinking` feature in the model catalog: the reasoning effort "
                         f"{reasoning_effort!r} may be ignored or refused.")
        if schema and info.features and "structured_outputs" not in info.features:
            notes.append(f"{model} has no `structured_outputs` feature in the model catalog: the --schema may "
                         "be ignored (the answer is still parsed as JSON).")
        if info.context_length:
            tokens = estimate_tokens(content) + (estimate_tokens(system) if system else 0)
            if tokens > info.context_length:
                notes.append(f"The prompt is about {tokens:,} tokens (estimated), more than {model}'s context "
                             f"of {info.context_length:,} tokens: it may be refused or cut.")
    if budget_set and (info is None or not info.priced):
        why = "is not in the model catalog" if info is None and catalog().models is not None else (
            "has no price in the model catalog" if info is not None else "has no known price (no model catalog)")
        notes.append(f"{model} {why}: this call's cost cannot be counted against the budget.")
    return notes


def cell_warnings(params: dict, content: object, extra: Mapping) -> list[str]:
    """`request_warnings` for a cell: `params` its resolved settings, `content` the prompt, messages or
    input items it sends, `extra` the other request fields (a json_schema format means --schema)."""
    fmt = extra.get("response_format") or (extra.get("text") or {}).get("format") or {}
    return request_warnings(params["model"], content, system=params.get("system") or None,
                            images=_has_image(content), reasoning_effort=params.get("reasoning_effort"),
                            schema=isinstance(fmt, Mapping) and fmt.get("type") == "json_schema")


def request_warnings_for(request: Request, *, budget_set: bool = False) -> list[str]:
    """`request_warnings` for a typed request (a cell's, a --compare column's, an --over template's)."""
    from ..core.protocol import request_body

    body = request_body(request)
    return request_warnings(request.model, body.get("messages", body.get("input")),
                            system=body.get("instructions"), images=bool(request.images),
                            reasoning_effort=request.reasoning_effort, schema=request.schema is not None,
                            budget_set=budget_set)


def _has_image(value: object) -> bool:
    if isinstance(value, list):
        return any(_has_image(item) for item in value)
    if isinstance(value, Mapping):
        return value.get("type") in ("image_url", "input_image") or _has_image(value.get("content"))
    return False


# -- %aihubmix models ---------------------------------------------------------------------------------------
def parse_models_options(words: list[str]) -> dict:
    """`[FILTER] [--features a,b] [--modality m] [--refresh]`; UsageError (one line) for anything else."""
    from IPython.core.error import UsageError

    usage = "Usage: %aihubmix models [FILTER] [--features thinking,tools] [--modality image] [--refresh]"
    options: dict = {"needle": [], "features": [], "modalities": [], "refresh": False}
    index = 0
    while index < len(words):
        word = words[index]
        name, _, value = word.partition("=")
        if name in ("--features", "--feature", "--modality", "--modalities"):
            if not value:
                index += 1
                if index >= len(words) or words[index].startswith("--"):
                    raise UsageError(f"{name} needs a value. {usage}")
                value = words[index]
            wanted = [piece.strip().lower() for piece in value.split(",") if piece.strip()]
            known = FEATURES if name.startswith("--feature") else MODALITIES
            unknown = [piece for piece in wanted if piece not in known]
            if unknown:
                raise UsageError(f"{name}: unknown {', '.join(unknown)}; use {', '.join(known)}.")
            options["features" if name.startswith("--feature") else "modalities"] += wanted
        elif word == "--refresh":
            options["refresh"] = True
        elif word.startswith("-"):
            raise UsageError(f"Unknown option {word!r}. {usage}")
        else:
            options["needle"].append(word)
        index += 1
    options["needle"] = " ".join(options["needle"]).lower()
    return options


def models_listing(models: list[dict], options: dict, current: Catalog | None = None) -> dict:
    """Display data for `%aihubmix models`: the models this key may use (`/v1/models`), with the catalog's
    context, max output, prices per 1M tokens, input modalities and features; one quiet line under it."""
    current = current or catalog()
    infos = current.refresh() if options["refresh"] else current.ensure(COMMAND_WAIT)
    note = current.describe()
    needle, features, modalities = options["needle"], options["features"], options["modalities"]
    ids = sorted({str(m["id"]) for m in models if needle in str(m["id"]).lower()})
    if infos is None:
        if features or modalities:
            return _lines(f"{note} Cannot filter by features or input modality without it.")
        owners = {str(m["id"]): str(m.get("owned_by", "")) for m in models}
        if not ids:
            return _lines(f"No model matches {needle!r} ({len(models)} models in all).")
        table = ["| model | owned by |", "|---|---|"] + [f"| {model_cell(i)} | {owners[i]} |" for i in ids]
        plain = [f"{i:<40} {owners[i]}" for i in ids]
        return {"text/markdown": "\n".join(table) + f"\n\n<sub>{note}</sub>",
                "text/plain": "\n".join(plain + [note])}
    rows = []
    for model_id in ids:
        info = find_model(infos, model_id)
        if features and (info is None or not all(info.has_feature(f) for f in features)):
            continue
        if modalities and (info is None or not all(m in info.input_modalities for m in modalities)):
            continue
        rows.append((model_id, info))
    if not rows:
        wanted = ", ".join(filter(None, [repr(needle) if needle else "", *features, *modalities]))
        return _lines(f"No model matches {wanted} ({len(models)} models in all). {note}")
    table = ["| model | context | max output | input $ / 1M | output $ / 1M | input | features |",
             "|---|--:|--:|--:|--:|---|---|"]
    plain = [f"{'model':<32} {'context':>10} {'max out':>9} {'in $/1M':>9} {'out $/1M':>9}  features"]
    for model_id, info in rows:
        if info is None:
            table.append(f"| {model_cell(model_id)} | — | — | — | — | — | not in the catalog |")
            plain.append(f"{model_id:<32} {'—':>10} {'—':>9} {'—':>9} {'—':>9}  (not in the catalog)")
            continue
        context = f"{info.context_length:,}" if info.context_length else "—"
        output = f"{info.max_output:,}" if info.max_output else "—"
        price_in, price_out = format_price(info.input_price), format_price(info.output_price)
        listed = ", ".join(sorted(info.features))
        table.append(f"| {model_cell(model_id)} | {context} | {output} | {price_in} | {price_out} | "
                     f"{', '.join(sorted(info.input_modalities))} | {listed} |")
        plain.append(f"{model_id:<32} {context:>10} {output:>9} {price_in:>9} {price_out:>9}  {listed}")
    unit = ("Prices are USD per 1M tokens as the catalog lists them (compare them with aihubmix.com); every "
            "cost shown from them is an estimate.")
    return {"text/markdown": markdown_dollars("\n".join(table) + f"\n\n<sub>{unit} {note}</sub>"),
            "text/plain": "\n".join(plain + [unit, note])}


def model_cell(model_id: str) -> str:
    """A model id in a Markdown table, as code on one line: `claude-sonnet-4-5` never wraps at a hyphen in
    a narrow table (a style JupyterLab's sanitizer keeps; the id copies as it is)."""
    import html

    return f'<code style="white-space: nowrap">{html.escape(model_id)}</code>'


def _lines(text: str) -> dict:
    return {"text/markdown": markdown_dollars(text), "text/plain": text}

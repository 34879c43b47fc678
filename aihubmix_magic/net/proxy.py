"""The proxy rule: whether a URL goes through a proxy from the environment, and which. No I/O in it.

One function, `proxy_for(url)`, decides for both drivers (the sync `Client` and the batch lanes), and
decides as httpx's clients do with `trust_env=True` (httpx `_utils.get_environment_proxies` and its mount
matching, `_utils.URLPattern`), so a cell and a batch always take the same route:

- the proxies are `HTTP_PROXY`, `HTTPS_PROXY` and `ALL_PROXY` as `urllib.request.getproxies()` reads them
  (upper or lower case; lower case wins; a value without a scheme means `http://`);
- each `NO_PROXY` entry (comma separated) sends matching URLs direct: `*` (alone or anywhere in the list)
  turns every proxy off; `example.com` matches the domain and its subdomains; `.example.com` only the
  subdomains; `host:port` that port only; `scheme://host` that scheme and exactly that host; an IP
  address (v4 or v6) or `localhost` that host exactly;
- the most specific rule wins: one with a port first, then the longest host, then the longest scheme.

Quirks are httpx's and kept on purpose (a table test compares every form with httpx itself): an IP range
such as `192.168.0.0/16` matches only its first address, and a leading `*.` in NO_PROXY matches nothing.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

__all__ = ["proxy_for"]

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def proxy_for(url: str, proxies: Mapping[str, str] | None = None) -> str | None:
    """The proxy URL that `url` goes through, or None (direct). `proxies`: scheme (`http`, `https`,
    `all`, `no`) → value, as `urllib.request.getproxies()` gives them (the default: read them now)."""
    if proxies is None:
        import urllib.request

        proxies = urllib.request.getproxies()
    routes: dict[str, str | None] = {}
    for scheme in ("http", "https", "all"):
        value = proxies.get(scheme)
        if value:
            routes[f"{scheme}://"] = value if "://" in value else f"http://{value}"
    for entry in (entry.strip() for entry in proxies.get("no", "").split(",")):
        if entry == "*":
            return None
        if not entry:
            continue
        if "://" in entry:
            routes[entry] = None
        elif _is_ip(entry, ipaddress.IPv4Address):
            routes[f"all://{entry}"] = None
        elif _is_ip(entry, ipaddress.IPv6Address):
            routes[f"all://[{entry}]"] = None
        elif entry.lower() == "localhost":
            routes[f"all://{entry}"] = None
        else:
            routes[f"all://*{entry}"] = None
    patterns = []
    for key, proxy in routes.items():
        try:
            patterns.append((_Pattern(key), proxy))
        except ValueError:  # a form httpx cannot read either (a port that is not a number): never matches
            continue
    patterns.sort(key=lambda route: route[0].priority)  # stable: ties keep their order, as in httpx
    target = _Target(url)
    for pattern, proxy in patterns:
        if pattern.matches(target):
            return proxy
    return None


def _is_ip(text: str, kind: type[ipaddress.IPv4Address] | type[ipaddress.IPv6Address]) -> bool:
    try:
        kind(text.split("/")[0])
    except ValueError:
        return False
    return True


def _host(hostname: str | None) -> str:
    host = (hostname or "").lower()
    if host and not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            pass
    return host


def _port(scheme: str, port: int | None) -> int | None:
    """The port as httpx.URL keeps it: None when it is the scheme's default."""
    return None if port is not None and _DEFAULT_PORTS.get(scheme) == port else port


class _Target:
    __slots__ = ("host", "port", "scheme")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.scheme = parts.scheme.lower()
        self.host = _host(parts.hostname)
        self.port = _port(self.scheme, parts.port)


class _Pattern:
    """httpx's URLPattern: `all://` any scheme, `*` any host, `*example.com` the domain and below it,
    `*.example.com` only below it."""

    __slots__ = ("host", "port", "regex", "scheme")

    def __init__(self, pattern: str) -> None:
        parts = urlsplit(pattern)
        scheme = parts.scheme.lower()
        self.scheme = "" if scheme == "all" else scheme
        host = _host(parts.hostname)
        self.port = _port(scheme, parts.port)
        self.host = "" if host == "*" else host
        self.regex: re.Pattern[str] | None
        if not host or host == "*":
            self.regex = None
        elif host.startswith("*."):
            self.regex = re.compile(f"^.+\\.{re.escape(host[2:])}$")
        elif host.startswith("*"):
            self.regex = re.compile(f"^(.+\\.)?{re.escape(host[1:])}$")
        else:
            self.regex = re.compile(f"^{re.escape(host)}$")

    @property
    def priority(self) -> tuple[int, int, int]:
        return (0 if self.port is not None else 1, -len(self.host), -len(self.scheme))

    def matches(self, target: _Target) -> bool:
        if self.scheme and self.scheme != target.scheme:
            return False
        if self.host and self.regex is not None and not self.regex.match(target.host):
            return False
        return self.port is None or self.port == target.port

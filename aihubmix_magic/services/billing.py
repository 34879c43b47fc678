"""`%aihubmix balance`: the account's remaining credit and usage, from AiHubMix's billing endpoints.

PROTOCOL §1 (as AiHubMix's own MCP server uses them), on the API's host root (the base URL without /v1):

    GET /v1/dashboard/billing/subscription   soft_limit_usd (the credit limit), access_until (unix time, 0: none)
    GET /dashboard/billing/usage             total_usage: used, in US cents
    GET /dashboard/billing/remain            total_usage: what remains, in USD (sic)
    GET /api/status                          data.display_in_currency, data.quota_per_unit (public, no key)

When `display_in_currency` is false the amounts are quota units, and are divided by `quota_per_unit`.
The key goes only in the Authorization header of the three billing requests, which go to the configured
base URL's host. Each endpoint may fail on its own: what arrived is shown, the rest is "unknown", and one
line says which failed. No httpx at import time.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Balance", "fetch_balance"]

TIMEOUT = 10.0
CONNECT_TIMEOUT = 5.0
_ENDPOINTS = {
    "subscription": "/v1/dashboard/billing/subscription",
    "usage": "/dashboard/billing/usage",
    "remain": "/dashboard/billing/remain",
}


@dataclass(frozen=True)
class Balance:
    """What the billing endpoints said, in USD; None for what is unknown. `failed` names the endpoints
    that did not answer usably, with a short reason."""

    remaining: float | None = None
    used: float | None = None
    limit: float | None = None
    access_until: int | None = None
    failed: tuple[str, ...] = ()

    @property
    def remaining_text(self) -> str:
        """`$14.77`, or "" when unknown (the panel's status line shows it)."""
        remaining = self.remaining
        if remaining is None and self.limit is not None and self.used is not None:
            remaining = self.limit - self.used
        return "" if remaining is None else f"${remaining:,.2f}"

    def line(self) -> str:
        parts = []
        remaining = self.remaining_text
        derived = self.remaining is None and remaining
        parts.append(f"Remaining credit: {remaining}{' (limit − used)' if derived else ''}" if remaining
                     else "Remaining credit: unknown")
        if self.used is not None:
            parts.append(f"used ${self.used:,.2f}")
        if self.limit is not None:
            parts.append(f"limit ${self.limit:,.2f}")
        if self.access_until:
            when = datetime.datetime.fromtimestamp(self.access_until, datetime.timezone.utc).date().isoformat()
            parts.append(f"key valid until {when}")
        text = " · ".join(parts) + " (as the account's billing endpoints report it)."
        if self.failed:
            text += f" Not available: {'; '.join(self.failed)}."
        return text


def fetch_balance(root: str, api_key: str, *, scrub=None) -> Balance:
    """Ask the billing endpoints under `root` (e.g. https://aihubmix.com) with `api_key`; never raises for
    an endpoint that fails (it is listed in `failed`). `scrub(text)` masks the key in any reason shown."""
    import httpx

    scrub = scrub or (lambda text: text)
    values: dict[str, object] = {}
    failed: list[str] = []
    headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
    with httpx.Client(timeout=httpx.Timeout(TIMEOUT, connect=CONNECT_TIMEOUT), follow_redirects=False) as http:
        status = _get(http, root + "/api/status", {"Accept": "application/json"})
        unreachable = isinstance(status, _Failure) and status.unreachable
        for name, path in _ENDPOINTS.items():
            if unreachable and isinstance(status, _Failure):  # the host did not answer: do not wait for it 3 more times
                failed.append(f"{name} ({scrub(status.reason)})")
                continue
            body = _get(http, root + path, headers)
            if isinstance(body, _Failure):
                failed.append(f"{name} ({scrub(body.reason)})")
                unreachable = body.unreachable
            else:
                values[name] = body
    scale = 1.0
    data = status.get("data") if isinstance(status, Mapping) else None
    if isinstance(data, Mapping) and data.get("display_in_currency") is False:
        per_unit = _number(data.get("quota_per_unit"))
        if per_unit:
            scale = 1 / per_unit

    def amount(name: str, field: str, factor: float = 1.0) -> float | None:
        body = values.get(name)
        number = _number(body.get(field)) if isinstance(body, Mapping) else None
        if number is None and name in values:
            failed.append(f"{name} (no {field} in the answer)")
        return None if number is None else number * factor * scale

    limit = amount("subscription", "soft_limit_usd")
    subscription = values.get("subscription")
    until = _number(subscription.get("access_until")) if isinstance(subscription, Mapping) else None
    return Balance(remaining=amount("remain", "total_usage"), used=amount("usage", "total_usage", 0.01),
                   limit=limit, access_until=int(until) if until else None, failed=tuple(failed))


@dataclass(frozen=True)
class _Failure:
    reason: str
    unreachable: bool = False


def _get(http, url: str, headers: dict) -> object:
    import httpx

    try:
        response = http.get(url, headers=headers)
    except httpx.TimeoutException:
        return _Failure("timed out", unreachable=True)
    except httpx.HTTPError as exc:
        return _Failure(f"cannot connect: {type(exc).__name__}", unreachable=True)
    if response.status_code >= 400:
        return _Failure(f"HTTP {response.status_code}")
    try:
        body = response.json()
    except ValueError:
        return _Failure("not JSON")
    if not isinstance(body, Mapping):
        return _Failure("unexpected answer")
    if body.get("error") or body.get("success") is False:
        return _Failure("the server reported an error")
    return body


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip().lstrip("$"))
        except ValueError:
            return None
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None

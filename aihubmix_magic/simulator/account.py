"""The account endpoints: the public model catalog (`/api/v1/models`) and billing, with faults of their own."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    pass

from .replies import _Canned, _invalid_token_error, _json_canned

# --- the model catalog and the billing endpoints -------------------------------------------------------
# GET /api/v1/models (public, AiHubMix's rich catalog with prices per 1M tokens), the billing endpoints of
# PROTOCOL §1 (with the key) and GET /api/status. Their faults are chosen by Simulator(catalog=...,
# billing=...) or, for the catalog, by a ``fault`` query parameter (``/api/v1/models?fault=down``).

CATALOG_FAULTS: dict[str, str] = {
    "ok": "the catalog, with prices for every model (the default)",
    "down": "HTTP 500",
    "slow": "the catalog, after catalog_delay seconds (default 3)",
    "not-json": "HTTP 200 with an HTML maintenance page",
    "wrong-shape": 'HTTP 200 with {"success": true, "data": {"models": "…"}} (no list)',
    "unsuccessful": 'HTTP 200 with {"success": false, "message": "…"}, as AiHubMix reports failures',
}
BILLING_FAULTS: dict[str, str] = {
    "ok": "every billing endpoint answers (the default)",
    "down": "every billing endpoint answers HTTP 500",
    "partial": "remain answers 500, subscription lacks soft_limit_usd; usage and /api/status answer",
    "quota-units": "/api/status says display_in_currency: false; amounts are quota units (500,000 per USD)",
}
_ALL_MODALITIES = "text,image,audio,video,pdf"
_GPT_FEATURES = "tools,function_calling,structured_outputs"
# model id: (features, input modalities, context length, max output, pricing per 1M tokens). A few entries
# use the other shapes a tolerant reader must accept: numbers as strings, a list instead of a comma
# string, a null cache price, only `tools` or only `function_calling` for tool calls.
_CATALOG: dict[str, tuple[Any, Any, Any, Any, Any]] = {
    # the simulator reasons on request with any model; gpt-4o-mini, its default, is listed with `thinking`
    "gpt-4o-mini": ("thinking," + _GPT_FEATURES, "text,image", 128000, 16384,
                    {"input": 0.15, "output": 0.6, "cache_read": 0.075}),
    "gpt-4o": (_GPT_FEATURES, "text,image", 128000, 16384, {"input": 2.5, "output": 10, "cache_read": 1.25}),
    "gpt-4.1-mini": (_GPT_FEATURES + ",long_context", "text,image", 1047576, 32768,
                     {"input": 0.4, "output": 1.6, "cache_read": 0.1}),
    "gpt-5.4": ("thinking," + _GPT_FEATURES, "text,image,pdf", 400000, 128000,
                {"input": 1.25, "output": 10, "cache_read": 0.125}),
    "o4-mini": ("thinking,tools,function_calling,structured_outputs", "text,image", 200000, 100000,
                {"input": 1.1, "output": 4.4, "cache_read": 0.275}),
    "claude-sonnet-4-5": ("thinking,tools,function_calling", "text,image,pdf", 200000, 64000,
                          {"input": 3, "output": 15, "cache_read": 0.3, "cache_write": 3.75}),
    "claude-sonnet-4-5-think": ("thinking,tools", "text,image,pdf", 200000, 64000,
                                {"input": 3, "output": 15, "cache_read": 0.3, "cache_write": 3.75}),
    "claude-haiku-4-5": ("tools,function_calling", "text,image", 200000, 64000,
                         {"input": 1, "output": 5, "cache_read": 0.1, "cache_write": 1.25}),
    "gemini-2.5-flash": ("thinking,tools,function_calling,structured_outputs,web,long_context", _ALL_MODALITIES,
                         1048576, 65536, {"input": 0.3, "output": 2.5, "cache_read": 0.075}),
    "gemini-2.5-flash-nothink": ("tools,function_calling,structured_outputs,web,long_context", _ALL_MODALITIES,
                                 1048576, 65536, {"input": 0.3, "output": 2.5, "cache_read": 0.075}),
    "gemini-3.1-pro-preview": ("thinking,tools,function_calling,structured_outputs,web,long_context",
                               _ALL_MODALITIES, 1048576, 65536, {"input": 2, "output": 12, "cache_read": 0.2}),
    "deepseek-chat": ("tools", "text", 128000, 8192, {"input": "0.28", "output": "0.42", "cache_read": "0.028"}),
    "deepseek-reasoner": ("thinking,function_calling", "text", 128000, 65536,
                          {"input": "0.28", "output": "0.42", "cache_read": "0.028"}),
    "qwen3-coder": (["tools", "function_calling", "long_context"], ["text"], "262144", "65536",
                    {"input": 0.3, "output": 1.5, "cache_read": None}),
    "Kimi-K2-0905": ("tools,function_calling", "text", 262144, 16384, {"input": 0.6, "output": 2.5}),
    "sim-free": ("tools", "text", 1000, 512, {"input": 0, "output": 0}),
    "sim-cached": ("", "text", 128000, 8192, {"input": 2, "output": 8, "cache_read": 0.5}),
    "sim-unpriced": ("", "text", 8192, 1024, None),
}
CATALOG_MODELS: list[str] = list(_CATALOG)
_BILLING = {"limit": 20.0, "used_cents": 523.4, "remain": 14.766, "quota_per_unit": 500_000}


def _catalog_entry(model_id: str) -> dict:
    features, modalities, context, max_output, pricing = _CATALOG[model_id]
    entry: dict[str, Any] = {
        "model_id": model_id,
        "desc": f"{model_id} (simulated catalog entry; prices are examples)",
        "types": "llm",
        "features": features,
        "input_modalities": modalities,
        "max_output": max_output,
        "context_length": context,
    }
    if pricing is not None:
        entry["pricing"] = pricing
    return entry


def _names_of(value: Any) -> set[str]:
    pieces = value.split(",") if isinstance(value, str) else value if isinstance(value, list) else []
    return {str(piece).strip().lower() for piece in pieces if str(piece).strip()}


def _catalog_body(query: dict[str, list[str]]) -> dict:
    """The catalog filtered and sorted as the query asks (type/types, features, modalities, model,
    sort_by, sort_order)."""
    def first(name: str) -> str:
        return (query.get(name) or [""])[0].strip()

    entries = [_catalog_entry(model_id) for model_id in _CATALOG]
    kind = first("type") or first("types")
    if kind:
        entries = [e for e in entries if kind.lower() in _names_of(e["types"])]
    for name, field_name in (("features", "features"), ("modalities", "input_modalities")):
        wanted = _names_of(first(name))
        if wanted:
            entries = [e for e in entries if wanted <= _names_of(e[field_name])]
    needle = first("model").lower()
    if needle:
        entries = [e for e in entries if needle in e["model_id"].lower()]
    sort_by = first("sort_by")
    if sort_by in ("context_length", "model_ratio"):
        def number(entry: dict) -> float:
            value: Any = entry["context_length"] if sort_by == "context_length" else (entry.get("pricing") or {}).get("input")
            try:
                return float(value)
            except (TypeError, ValueError):
                return 0.0

        entries.sort(key=number, reverse=first("sort_order").lower() == "desc")
    elif first("sort_order").lower() == "desc":
        entries.reverse()
    return {"success": True, "message": "", "data": entries}


def _catalog_canned(fault: str, query: dict[str, list[str]]) -> _Canned:
    if fault == "down":
        return _json_canned(500, {"success": False, "message": "internal server error"})
    if fault == "not-json":
        page = "<html><body><h1>Down for maintenance</h1><p>Back soon.</p></body></html>"
        return _Canned(200, page.encode(), "text/html; charset=utf-8")
    if fault == "wrong-shape":
        return _json_canned(200, {"success": True, "data": {"models": "see https://aihubmix.com/models"}})
    if fault == "unsuccessful":
        return _json_canned(200, {"success": False, "message": "model list temporarily unavailable"})
    return _json_canned(200, _catalog_body(query), (("Cache-Control", "max-age=300"),))


def _billing_canned(route: str, fault: str, authorized: bool) -> _Canned:
    if route == "status":
        in_currency = fault != "quota-units"
        return _json_canned(200, {"success": True, "message": "", "data": {
            "system_name": "AiHubMix simulator", "quota_per_unit": _BILLING["quota_per_unit"],
            "display_in_currency": in_currency}})
    if not authorized:
        return _json_canned(401, _invalid_token_error())
    if fault == "down" or (fault == "partial" and route == "billing-remain"):
        return _json_canned(500, {"error": {"message": "billing is unavailable", "type": "Aihubmix_api_error"}})
    scale = _BILLING["quota_per_unit"] if fault == "quota-units" else 1
    if route == "billing-subscription":
        body: dict = {"object": "billing_subscription", "has_payment_method": True,
                      "hard_limit_usd": _BILLING["limit"] * scale, "access_until": 0}
        if fault != "partial":
            body["soft_limit_usd"] = _BILLING["limit"] * scale
        return _json_canned(200, body)
    if route == "billing-usage":
        return _json_canned(200, {"object": "list", "total_usage": _BILLING["used_cents"] * scale})
    return _json_canned(200, {"object": "list", "total_usage": _BILLING["remain"] * scale})


def _serve_account(handler: Any, route: str) -> None:
    """The catalog, the billing endpoints and /api/status, with the simulator's chosen faults."""
    simulator = handler._simulator
    if route == "catalog":
        query = parse_qs(urlsplit(handler.path).query)
        fault = (query.get("fault") or [simulator.catalog])[0]
        if fault not in CATALOG_FAULTS:
            handler._send(_json_canned(400, {"success": False, "message": f"unknown fault {fault!r}"}))
            return
        if fault == "slow" and handler.server.stopping.wait(simulator.catalog_delay):
            handler._abort()  # the simulator is stopping
            return
        handler._send(_catalog_canned(fault, query))
        return
    handler._send(_billing_canned(route, simulator.billing, handler._is_authorized()))


_ACCOUNT_ROUTES = {
    ("GET", "/api/v1/models"): "catalog",
    ("GET", "/v1/dashboard/billing/subscription"): "billing-subscription",
    ("GET", "/dashboard/billing/usage"): "billing-usage",
    ("GET", "/dashboard/billing/remain"): "billing-remain",
    ("GET", "/api/status"): "status",
}

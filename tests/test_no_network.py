"""No test reaches the internet: conftest's tripwire stands in for every host off this machine."""

from __future__ import annotations

import os

import httpx

from aihubmix_magic.net.proxy import proxy_for
from aihubmix_magic.services import catalog as _catalog
from aihubmix_magic.simulator import Simulator


def test_a_request_off_the_machine_goes_to_the_tripwire(pytestconfig):
    tripwire = pytestconfig._aihubmix_tripwire
    assert os.environ["HTTPS_PROXY"] == tripwire.url
    before = len(tripwire.hits)
    url = "https://aihubmix.com/api/v1/models"
    assert httpx.URL(os.environ["HTTPS_PROXY"]).host == "127.0.0.1"
    assert proxy_for(url) == tripwire.url  # what httpx and the batch lanes would use for it from the environment
    try:  # the proxy given explicitly too: this request can only ever reach the tripwire
        httpx.get(url, timeout=5, proxy=tripwire.url, trust_env=False)
    except httpx.HTTPError:
        pass
    assert len(tripwire.hits) == before + 1 and "aihubmix.com" in tripwire.hits[-1]
    del tripwire.hits[before:]  # this one was on purpose


def test_loopback_is_not_proxied(sim: Simulator):
    assert httpx.get(sim.base_url.replace("/v1", "/api/v1/models"), timeout=5).status_code == 200


def test_the_catalog_url_for_the_real_gateway_is_only_derived():
    # the parametrized URL cases in test_catalog.py compute strings; nothing is fetched from them
    assert _catalog.catalog_url("https://aihubmix.com/v1") == "https://aihubmix.com/api/v1/models"

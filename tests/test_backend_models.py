"""BackendModels (bridge/backend_models.py): one backend's ``/v1/models`` body, cached for a TTL."""

from __future__ import annotations

import pytest

from bridge.backend_models import BackendModels
from bridge.backends import Backend
from bridge.config import Settings
from bridge.errors import UpstreamHTTPError, UpstreamProtocolError
from bridge.upstream import UpstreamClient
from tests.fakes.backend import FakeBackend


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def fake():
    started = FakeBackend(models=("m1", "m2")).start()
    yield started
    started.stop()


@pytest.fixture()
def backend(fake):
    fake.reset()
    yield fake
    fake.reset()


def listing_for(fake: FakeBackend, clock: Clock) -> BackendModels:
    s = Settings(demo_backend=False, backends=(), max_retries=0, connect_timeout_s=1.0, request_timeout_s=5.0)
    return BackendModels(UpstreamClient(s, backend=Backend("a", fake.url + "/v1")), 30.0, clock=clock)


def test_the_body_is_cached_for_its_ttl(backend):
    clock = Clock()
    listing = listing_for(backend, clock)
    assert listing.last is None and not listing.fresh()
    assert listing.ids() == ["m1", "m2"] and listing.fresh()
    assert listing.entry("m2")["id"] == "m2" and listing.entry("nope") is None
    assert len(backend.requests_to("/v1/models")) == 1
    clock.now += 30
    assert not listing.fresh() and listing.ids() == ["m1", "m2"]
    assert len(backend.requests_to("/v1/models")) == 2


def test_a_failed_refresh_keeps_the_stale_body_for_one_ttl(backend):
    clock = Clock()
    listing = listing_for(backend, clock)
    body = listing.fetch()
    clock.now += 30
    backend.script(status=500, match_path="/v1/models")
    assert listing.cached() is body and listing.fresh()  # not asked again before another TTL
    with pytest.raises(UpstreamHTTPError):
        listing.fetch()
    assert len(backend.requests_to("/v1/models")) == 3 and listing.last is body


def test_a_body_that_is_not_a_model_list_is_not_cached(backend):
    listing = listing_for(backend, Clock())
    backend.script(error_body={"nothing": "here"}, status=200, match_path="/v1/models")
    with pytest.raises(UpstreamProtocolError):
        listing.fetch()
    assert listing.last is None and listing.cached() is None

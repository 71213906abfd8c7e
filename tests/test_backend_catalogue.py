"""BackendCatalogue (bridge/backend_catalogue.py) against in-process fake backends: the merged
``/v1/models`` body, who serves which model, backends left alone, all backends probed at once."""

from __future__ import annotations

import pytest

from bridge.backend_catalogue import BackendCatalogue
from bridge.backends import Backend
from bridge.config import Settings
from bridge.errors import UpstreamConnectError
from bridge.upstream import Deadline, UpstreamClient
from tests.bridgeproc import free_port
from tests.fakes.backend import FakeBackend


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def fakes():
    started = [FakeBackend(models=("m1", "m2")).start(), FakeBackend(models=("m1", "m3")).start()]
    yield started
    for fake in started:
        fake.stop()


@pytest.fixture()
def a_b(fakes):
    for fake in fakes:
        fake.reset()
    yield fakes
    for fake in fakes:
        fake.reset()


def catalogue_for(*backends: Backend, clock=None, on_ids=lambda ids: None) -> BackendCatalogue:
    s = Settings(demo_backend=False, backends=backends, max_retries=1, retry_backoff_s=0.01,
                 connect_timeout_s=1.0, request_timeout_s=5.0, models_cache_s=60.0)
    clients = [UpstreamClient(s, backend=b) for b in backends]
    return BackendCatalogue(backends, clients, ttl_s=s.models_cache_s, on_ids=on_ids, clock=clock or Clock())


def test_merged_catalogue_lists_each_model_once_and_knows_who_serves_what(a_b):
    a, b = a_b
    catalogue = catalogue_for(Backend("a", a.url + "/v1"), Backend("b", b.url + "/v1"),
                              Backend("c", "http://127.0.0.1:9/v1", models=("m9", "m1")))
    assert catalogue.ids() == ["m1", "m2", "m3", "m9"]
    assert catalogue.serving("m2") == (0,) and catalogue.serving("m3") == (1,)
    assert catalogue.serving("m1") == (0, 1, 2)
    assert catalogue.served_by() == {"m1": [0, 1, 2], "m2": [0], "m3": [1], "m9": [2]}
    assert catalogue.entry("m9") == {"id": "m9", "object": "model", "owned_by": "c"}
    assert not catalogue.single_listing


def test_serving_before_listing_and_for_a_model_nobody_lists(a_b):
    a, b = a_b
    seen: list[list[str]] = []
    catalogue = catalogue_for(Backend("a", a.url + "/v1"), Backend("c", "http://127.0.0.1:9/v1", models=("m9",)),
                              on_ids=seen.append)
    assert catalogue.serving("m1") == (0,)  # a has not listed yet: it may serve m1, c does not
    assert catalogue.serving(None) == (0, 1)
    catalogue.fetch()
    assert [sorted(ids) for ids in seen] == [["m1", "m2", "m9"]]  # every listed id, each time a backend lists
    assert catalogue.listed == [frozenset({"m1", "m2"}), frozenset({"m9"})]
    assert catalogue.serving("m1") == (0,) and catalogue.serving("nobody") == (0, 1)  # the backends decide
    assert catalogue.ids() == ["m1", "m2", "m9"] and len(seen) == 1  # a cached listing is not news
    a.script(models=["m1", "m7"])
    catalogue.fetch()
    assert [sorted(ids) for ids in seen][-1] == ["m1", "m7", "m9"] and len(seen) == 2
    assert catalogue.serving("m2") == (0, 1) and catalogue.serving("m7") == (0,)  # m2: nobody lists it now


def test_a_backend_that_is_down_does_not_fail_the_catalogue_unless_none_answers(a_b):
    a, _ = a_b
    dead = f"http://127.0.0.1:{free_port()}/v1"
    catalogue = catalogue_for(Backend("a", a.url + "/v1"), Backend("dead", dead))
    assert [e["id"] for e in catalogue.fetch()["data"]] == ["m1", "m2"]
    with pytest.raises(UpstreamConnectError):
        catalogue_for(Backend("x", dead), Backend("y", f"http://127.0.0.1:{free_port()}/v1")).fetch()


def test_skipped_backends_are_not_asked_and_keep_their_last_listing(a_b):
    a, b = a_b
    catalogue = catalogue_for(Backend("a", a.url + "/v1"), Backend("b", b.url + "/v1"))
    catalogue.fetch()
    asked = len(a.requests_to("/v1/models"))
    assert [e["id"] for e in catalogue.fetch(skip=[0])["data"]] == ["m1", "m2", "m3"]
    assert len(a.requests_to("/v1/models")) == asked
    with pytest.raises(UpstreamConnectError, match="circuit open"):
        catalogue.fetch(skip=[0, 1])  # nobody asked: the first error, not the stale lists


def test_cached_is_none_only_when_no_backend_can_list():
    dead = f"http://127.0.0.1:{free_port()}/v1"
    catalogue = catalogue_for(Backend("x", dead), Backend("y", f"http://127.0.0.1:{free_port()}/v1"))
    assert catalogue.cached() is None and catalogue.ids() is None
    configured = catalogue_for(Backend("x", dead), Backend("c", dead, models=("m9",)))
    assert configured.ids() == ["m9"]


def test_one_backend_is_its_own_listing():
    dead = f"http://127.0.0.1:{free_port()}/v1"
    catalogue = catalogue_for(Backend("default", dead))
    assert catalogue.single_listing and catalogue.serving("anything") == (0,)
    with pytest.raises(UpstreamConnectError):
        catalogue.fetch()
    assert catalogue.cached() is None
    assert not catalogue_for(Backend("default", dead, models=("m1",))).single_listing


def test_probe_asks_every_backend_at_once(a_b):
    a, _ = a_b
    dead = f"http://127.0.0.1:{free_port()}/v1"
    catalogue = catalogue_for(Backend("a", a.url + "/v1"), Backend("dead", dead),
                              Backend("c", dead, models=("m9",)))
    errors = catalogue.probe(Deadline.after(5))
    assert errors[0] is None and isinstance(errors[1], UpstreamConnectError) and errors[2] is None
    assert catalogue.listed[0] == frozenset({"m1", "m2"}) and catalogue.listed[1] is None

"""Security through the real bridge: inbound keys, metrics token, secrets never leaked, request ids
sanitised, model names can't steer the backend URL, CORS only for configured origins."""

from __future__ import annotations

import hmac
import re

import pytest
import requests

from tests.faults import SECRET, TIMEOUT, chat_body, start_bridge

pytestmark = pytest.mark.integration
KEYS = ("key-one-123", "key-two-456")
METRICS_TOKEN = "metrics-token-789"
ORIGIN = "https://app.example"


@pytest.fixture(scope="module")
def locked(fake_backend, tmp_path_factory):
    proc = start_bridge(fake_backend, tmp_path_factory.mktemp("locked"), name="locked", workers=2,
                        BRIDGE_API_KEYS=",".join(KEYS), METRICS_TOKEN=METRICS_TOKEN, CORS_ORIGINS=ORIGIN)
    yield proc
    proc.stop()


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize("headers", [{}, auth("wrong"), auth(KEYS[0] + "x"), {"Authorization": KEYS[0]},
                                     {"Authorization": "Basic " + KEYS[0]}, auth("")])
@pytest.mark.parametrize("method,path", [("POST", "/api/chat"), ("GET", "/api/tags"), ("POST", "/v1/chat/completions"),
                                         ("GET", "/v1/models"), ("GET", "/api/version"), ("GET", "/ready")])
def test_inbound_key_required(locked, backend, headers, method, path):
    resp = requests.request(method, locked.url + path, json=chat_body(stream=False), headers=headers, timeout=TIMEOUT)
    assert resp.status_code == 401, (path, resp.status_code)
    body = resp.json()
    message = body["error"]["message"] if path.startswith("/v1/") else body["error"]
    assert isinstance(message, str) and "key" in message.lower()
    assert backend.requests_to("/v1/chat/completions") == []


@pytest.mark.parametrize("key", KEYS)
def test_each_configured_key_works(locked, backend, key):
    resp = requests.post(locked.url + "/api/chat", json=chat_body(stream=False), headers=auth(key), timeout=TIMEOUT)
    assert resp.status_code == 200
    resp = requests.post(locked.url + "/v1/chat/completions", json=chat_body(stream=False),
                         headers={"Authorization": f"bearer  {key} "}, timeout=TIMEOUT)
    assert resp.status_code == 200


def test_root_and_health_are_open(locked):
    assert requests.get(locked.url + "/", timeout=TIMEOUT).text == "Ollama is running"
    assert requests.head(locked.url + "/", timeout=TIMEOUT).status_code == 200
    assert requests.get(locked.url + "/health", timeout=TIMEOUT).status_code == 200


def test_keys_are_compared_in_constant_time_and_all_of_them(monkeypatch):
    from bridge.routes import auth

    compared = []
    real = hmac.compare_digest

    def spy(a, b):
        compared.append(b)
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    keys = (b"k1", b"k2", b"k3")
    assert auth.matches(b"k1", *keys) and compared == list(keys)  # no early exit on a match
    compared.clear()
    assert not auth.matches(b"nope", *keys) and compared == list(keys)
    assert not auth.matches(None, *keys)


@pytest.mark.parametrize("path", ["/metrics", "/v1/metrics", "/metrics/summary", "/v1/metrics/prometheus",
                                  "/v1/metrics/health"])
def test_metrics_token(locked, path):
    assert requests.get(locked.url + path, timeout=TIMEOUT).status_code == 401
    assert requests.get(locked.url + path, headers=auth("nope"), timeout=TIMEOUT).status_code == 401
    assert requests.get(locked.url + path, headers=auth(KEYS[0]), timeout=TIMEOUT).status_code == 401
    assert requests.get(locked.url + path, headers=auth(METRICS_TOKEN), timeout=TIMEOUT).status_code == 200


def test_backend_key_never_leaks(bridge, backend, reliability):
    """Provoke every error path, then look for the key in bodies, headers, /metrics and the log."""
    seen: list[str] = []
    # A backend that echoes the key in its error message (some do): it must be redacted.
    backend.script(status=401, error_body={"error": {"message": f"Incorrect API key provided: {SECRET}"}})
    for path, body in (("/api/chat", chat_body(stream=False)), ("/api/chat", chat_body()),
                       ("/v1/chat/completions", chat_body(stream=False)),
                       ("/api/embed", {"model": "e1", "input": "x"})):
        resp = requests.post(bridge.url + path, json=body, timeout=TIMEOUT)
        seen.append(resp.text + str(resp.headers))
    backend.reset()
    backend.script(fault="error_event", error_event_line=True)
    resp = requests.post(bridge.url + "/api/chat", json=chat_body(), timeout=TIMEOUT)
    seen.append(resp.text)
    for fault in ("refuse", "html_502", "invalid_json", "reset_mid_stream"):
        backend.reset()
        backend.script(fault=fault)
        resp = requests.post(bridge.url + "/api/chat", json=chat_body(), timeout=TIMEOUT)
        seen.append(resp.text + str(resp.headers))
    backend.reset()
    seen.append(requests.get(bridge.url + "/metrics", timeout=TIMEOUT).text)
    seen.append(requests.get(bridge.url + "/ready", timeout=TIMEOUT).text)
    seen.append(requests.get(bridge.url + "/api/version", timeout=TIMEOUT).text)
    log = bridge.log()
    assert requests.post(bridge.url + "/api/chat", json=chat_body(stream=False), timeout=TIMEOUT).status_code == 200
    assert backend.requests[-1].headers.get("authorization") == f"Bearer {SECRET}"  # it is really used
    for text in seen + [log]:
        assert SECRET not in text
        assert "sk-test-secret" not in text
    reliability.row("backend key in logs / error bodies / headers / metrics", outcome="never present")


@pytest.mark.parametrize("rid,kept", [
    ("abc-123", True),
    ("req:1.2_3", True),
    ("x" * 128, True),
    ("x" * 129, False),
    ("bad id", False),
    ("a\tb", False),
    ("<script>", False),
    ("a/b", False),
    ("é", False),
])
def test_inbound_request_id_sanitised(bridge, rid, kept):
    resp = requests.get(bridge.url + "/api/version", headers={"X-Request-ID": rid.encode("utf-8")}, timeout=TIMEOUT)
    out = resp.headers["X-Request-ID"]
    assert re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", out)
    assert (out == rid) is kept


def test_request_id_with_crlf_cannot_inject_headers(bridge, reliability):
    from tests.faults import raw_request
    raw = raw_request(bridge.port, b"GET /api/version HTTP/1.1\r\nHost: x\r\nX-Request-ID: abc\rSet-Cookie: x=1\r\n"
                      b"Connection: close\r\n\r\n", timeout_s=4)
    head = raw.partition(b"\r\n\r\n")[0].lower()
    assert b"set-cookie" not in head
    rid = [line for line in head.split(b"\r\n") if line.startswith(b"x-request-id:")]
    assert len(rid) <= 1
    resp = requests.get(bridge.url + "/api/version", headers={"X-Request-ID": "ok-id"}, timeout=TIMEOUT)
    assert resp.headers["X-Request-ID"] == "ok-id"
    reliability.row("X-Request-ID with CR / odd chars / 129 chars",
                    outcome="replaced by a fresh id; no header injected")


@pytest.mark.parametrize("model", ["../../admin", "http://evil/x", "//evil.example/x", "m1/../../admin",
                                   "m1?x=1#frag", "%2e%2e/admin", "@evil.example"])
@pytest.mark.parametrize("path", ["/api/chat", "/v1/chat/completions", "/api/embed", "/api/show"])
def test_model_name_cannot_steer_the_backend_url(bridge, backend, model, path):
    body = {"model": model, "messages": [{"role": "user", "content": "x"}], "stream": False, "input": "x"}
    resp = requests.post(bridge.url + path, json=body, timeout=TIMEOUT)
    assert resp.status_code in (400, 404), resp.status_code
    allowed = {"/v1/models", "/v1/chat/completions", "/v1/completions", "/v1/embeddings"}
    assert {r.path for r in backend.requests} <= allowed
    assert all(r.query == "" for r in backend.requests)


def test_model_name_cannot_steer_the_url_even_when_passed_through(bridge, backend, reliability):
    # A backend that lists such names: the bridge forwards them, but only inside the JSON body.
    backend.script(models=["m1", "../../admin", "http://evil/x"])
    requests.post(bridge.url + "/api/chat", json={"model": "../../admin", "messages": [], "stream": False,
                                                   "keep_alive": "5m", "prompt": "x"}, timeout=TIMEOUT)
    requests.post(bridge.url + "/api/generate", json={"model": "http://evil/x", "prompt": "x", "stream": False},
                  timeout=TIMEOUT)
    paths = {r.path for r in backend.requests}
    assert paths <= {"/v1/models", "/v1/chat/completions", "/v1/completions"}, paths
    models = [r.json.get("model") for r in backend.requests if isinstance(r.json, dict)]
    assert "http://evil/x" in models  # forwarded as data, never as part of the URL
    reliability.row("model '../../admin' / 'http://evil/x'", outcome=f"backend saw only {sorted(paths)}")


def test_cors_absent_by_default(bridge):
    resp = requests.get(bridge.url + "/api/version", headers={"Origin": ORIGIN}, timeout=TIMEOUT)
    assert not any(h.lower().startswith("access-control-") for h in resp.headers)
    resp = requests.options(bridge.url + "/api/chat", headers={"Origin": ORIGIN,
                            "Access-Control-Request-Method": "POST"}, timeout=TIMEOUT)
    assert "Access-Control-Allow-Origin" not in resp.headers


def test_cors_for_configured_origins_only(locked, reliability):
    resp = requests.get(locked.url + "/health", headers={"Origin": ORIGIN}, timeout=TIMEOUT)
    assert resp.headers["Access-Control-Allow-Origin"] == ORIGIN and "Origin" in resp.headers.get("Vary", "")
    resp = requests.get(locked.url + "/health", headers={"Origin": "https://evil.example"}, timeout=TIMEOUT)
    assert "Access-Control-Allow-Origin" not in resp.headers
    pre = requests.options(locked.url + "/api/chat", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST",
                           "Access-Control-Request-Headers": "authorization,content-type"}, timeout=TIMEOUT)
    assert pre.status_code in (200, 204) and pre.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "authorization" in pre.headers["Access-Control-Allow-Headers"].lower()
    # Browser clients of the Anthropic API send their key and version headers.
    allowed = pre.headers["Access-Control-Allow-Headers"].lower()
    assert "x-api-key" in allowed and "anthropic-version" in allowed
    # An error response still carries CORS headers, so browsers can read the error.
    resp = requests.post(locked.url + "/api/chat", json=chat_body(stream=False), headers={"Origin": ORIGIN},
                         timeout=TIMEOUT)
    assert resp.status_code == 401 and resp.headers["Access-Control-Allow-Origin"] == ORIGIN
    reliability.row("CORS", outcome="no headers by default; only configured origins, on errors and preflight too")

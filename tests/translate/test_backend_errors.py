"""Message extraction from every backend error shape, OpenAI error bodies, model-not-found heuristics."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.translate.backend_errors import (
    backend_error_message,
    model_not_found_in_body,
    openai_error_body,
)

JSON = "application/json"


def msg(body, status=400, content_type=JSON):
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    return backend_error_message(status, body, content_type)


# --- the shapes of ollama_api.md 3.5 ---------------------------------------------------------


def test_openai_and_new_vllm_nested_error():
    body = {"error": {"message": "context too long", "type": "invalid_request_error", "param": None, "code": None}}
    assert msg(body) == "context too long"


def test_old_vllm_top_level_error():
    body = {"object": "error", "message": "The model `x` does not exist.", "type": "NotFoundError", "code": 404}
    assert msg(body, 404) == "The model `x` does not exist."


def test_error_as_string():
    assert msg({"error": "model 'x' not found"}, 404) == "model 'x' not found"


def test_fastapi_detail_string():
    assert msg({"detail": "Not authenticated"}, 401) == "Not authenticated"


def test_fastapi_detail_list_joins_msgs():
    body = {
        "detail": [
            {"loc": ["body", "model"], "msg": "field required", "type": "value_error.missing"},
            {"loc": ["body", "messages"], "msg": "value is not a valid list", "type": "type_error.list"},
        ]
    }
    assert msg(body, 422) == "field required; value is not a valid list"


def test_fastapi_detail_list_of_strings_and_junk():
    assert msg({"detail": ["a", {"no": "msg"}, 3, {"msg": "b"}]}, 422) == "a; b"


def test_html_page_from_reverse_proxy():
    page = (
        b"<html>\r\n<head><title>502 Bad Gateway</title>"
        b"<style>body { color: red }</style><script>var x = '<b>';</script></head>\r\n"
        b"<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<!-- hidden -->"
        b"<hr><center>nginx/1.25 &amp; friends</center>\r\n</body>\r\n</html>\r\n"
    )
    out = backend_error_message(502, page, "text/html")
    assert out == "502 Bad Gateway 502 Bad Gateway nginx/1.25 & friends"


def test_html_detected_without_content_type():
    assert backend_error_message(503, b"<p>Service <b>Unavailable</b></p>", None) == "Service Unavailable"


def test_html_cut_to_300_chars():
    page = b"<html><body>" + b"word " * 500 + b"</body></html>"
    out = backend_error_message(500, page, "text/html; charset=utf-8")
    assert 0 < len(out) <= 300
    assert out.startswith("word word")


def test_plain_text_whitespace_collapsed_and_cut():
    out = backend_error_message(500, b"  upstream\n\n  connect   error  " + b"x" * 1000, "text/plain")
    assert out.startswith("upstream connect error x")
    assert len(out) <= 300


@pytest.mark.parametrize(
    "body",
    [b"", b"   \n", b"<html></html>", b"{}", b"[]", b"null", b'""', b'{"error": {}}', b'{"detail": []}'],
)
def test_empty_or_messageless_body_names_the_status(body):
    assert backend_error_message(503, body, "text/html" if b"<" in body else JSON) == "backend returned HTTP 503"


def test_empty_body_exact_fallback():
    assert backend_error_message(500, b"", None) == "backend returned HTTP 500"


def test_invalid_utf8_does_not_raise():
    out = backend_error_message(500, b"\xff\xfe bad \xc3\x28 bytes", "text/plain")
    assert "bad" in out


def test_invalid_utf8_inside_json_message():
    out = backend_error_message(400, b'{"error": {"message": "caf\xe9 closed"}}', JSON)
    assert out.startswith("caf") and out.endswith("closed")


# --- extraction order and edge cases ---------------------------------------------------------


def test_error_message_beats_top_level_message():
    assert msg({"error": {"message": "inner"}, "message": "outer", "detail": "d"}) == "inner"


def test_error_string_beats_message():
    assert msg({"error": "e", "message": "m"}) == "e"


def test_message_beats_detail():
    assert msg({"message": "m", "detail": "d"}) == "m"


def test_empty_error_message_falls_through():
    assert msg({"error": {"message": "  "}, "message": "fallback"}) == "fallback"


def test_non_string_message_values_are_skipped():
    assert msg({"error": {"message": 5}, "message": ["x"], "detail": "d"}) == "d"


def test_json_string_body():
    assert msg("oops") == "oops"


def test_json_with_wrong_content_type_still_parsed():
    assert backend_error_message(400, b'{"error": "bad"}', "text/plain") == "bad"


def test_json_body_with_bom_and_whitespace():
    assert backend_error_message(400, '\ufeff {"error":"bad"}'.encode(), JSON) == "bad"


def test_messageless_json_falls_back_to_its_text():
    assert backend_error_message(500, b'{"error": {"code": 7}}', JSON) == '{"error": {"code": 7}}'


def test_deeply_nested_json_does_not_raise():
    assert backend_error_message(500, b"{" + b'"a":[' * 100000, JSON)
    assert backend_error_message(500, b'{"a":' * 100000 + b"1" + b"}" * 100000, JSON)
    # Deep enough to parse, empty at the bottom: still no stack exhaustion.
    for depth in (50, 500, 900, 990):
        assert backend_error_message(500, b"[" * depth + b"]" * depth, JSON)


def test_long_json_message_is_bounded():
    out = msg({"error": {"message": "x" * 100000}})
    assert 300 < len(out) <= 2000


def test_multiline_message_collapsed():
    assert msg({"error": "line one\n  line two"}) == "line one line two"


def test_pathological_html_is_fast():
    import time

    start = time.monotonic()
    backend_error_message(500, b"<" * 1_000_000, None)
    backend_error_message(500, b"<script" * 200_000, "text/html")
    backend_error_message(500, b"<!--" * 200_000, "text/html")
    assert time.monotonic() - start < 2


def test_accepts_bytearray_and_str_defensively():
    assert backend_error_message(400, bytearray(b'{"error":"x"}'), None) == "x"
    assert backend_error_message(400, '{"error":"y"}', None) == "y"  # type: ignore[arg-type]
    assert backend_error_message(400, None, None) == "backend returned HTTP 400"  # type: ignore[arg-type]


CONTENT_TYPES = st.one_of(st.none(), st.sampled_from([JSON, "text/html", "text/plain", ""]))
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["error", "message", "detail", "msg"]) | st.text(max_size=5), children,
                      max_size=4),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None)
@given(status=st.integers(min_value=100, max_value=599), body=st.binary(max_size=2048), content_type=CONTENT_TYPES)
def test_never_raises_never_empty_on_any_bytes(status, body, content_type):
    out = backend_error_message(status, body, content_type)
    assert isinstance(out, str) and out.strip()


@settings(max_examples=300, deadline=None)
@given(value=JSON_VALUES, content_type=CONTENT_TYPES)
def test_never_raises_never_empty_on_any_json(value, content_type):
    out = backend_error_message(400, json.dumps(value).encode(), content_type)
    assert isinstance(out, str) and out.strip()


# --- openai_error_body -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "status, kind",
    [
        (400, "invalid_request_error"),
        (413, "invalid_request_error"),
        (422, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (504, "api_error"),
        (409, "api_error"),
    ],
)
def test_openai_error_body(status, kind):
    assert openai_error_body(status, "boom") == {
        "error": {"message": "boom", "type": kind, "param": None, "code": None}
    }


def test_openai_error_body_never_empty_message():
    assert openai_error_body(500, "")["error"]["message"]


# --- model_not_found_in_body -----------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        "model 'x' not found",  # Ollama
        "model \"x\" not found, try pulling it first",
        "The model `gpt-5` does not exist or you do not have access to it.",  # OpenAI / Groq
        "The model `x` does not exist.",  # vLLM
        "The API deployment for this resource does not exist.",  # Azure
        "Unknown model: foo",
        "no such model",
        "model_not_found",
        "foo/bar is not a valid model ID",  # OpenRouter
        "Invalid model name passed in model=foo",  # LiteLLM
        "Model Not Found",
    ],
)
def test_model_not_found_detected(message):
    assert model_not_found_in_body(message) is True


@pytest.mark.parametrize(
    "message",
    [
        "Not Found",  # a wrong base URL, not a missing model
        "context too long",
        "rate limit exceeded",
        "Invalid API key",
        "",
        "backend returned HTTP 404",
    ],
)
def test_other_messages_are_not_model_not_found(message):
    assert model_not_found_in_body(message) is False


def test_model_not_found_non_string_is_false():
    assert model_not_found_in_body(None) is False  # type: ignore[arg-type]


def test_many_entries_are_not_mistaken_for_deep_nesting():
    # A FastAPI 422 with 100 validation errors has hundreds of brackets but is only 4 levels deep.
    body = json.dumps({"detail": [{"loc": ["body", i], "msg": f"field {i} required"} for i in range(100)]})
    assert backend_error_message(422, body.encode(), JSON).startswith("field 0 required; field 1 required")


def test_nesting_past_the_limit_is_read_as_text_not_parsed(monkeypatch):
    import bridge.translate.backend_errors as be

    def no_parse(*_a, **_k):
        raise AssertionError("deeply nested bodies must not reach json.loads")

    monkeypatch.setattr(be.json, "loads", no_parse)
    assert backend_error_message(500, b"[" * 65 + b"]" * 65, JSON)

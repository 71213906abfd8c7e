"""bridge/routes/request_body.py: the body is one strictly parsed JSON object (a 400 naming what is
wrong otherwise), and the ``model`` and ``stream`` fields every route reads. Plain calls inside
Flask's test request context."""

from __future__ import annotations

import pytest
from flask import Flask

from bridge.errors import ClientRequestError
from bridge.routes.request_body import read_json_object, require_model_name, stream_flag

app = Flask(__name__)


def read(data: bytes | str, content_type: str = "application/json") -> dict:
    with app.test_request_context("/api/chat", method="POST", data=data, content_type=content_type):
        return read_json_object()


def refused(data: bytes | str, content_type: str = "application/json") -> str:
    with pytest.raises(ClientRequestError) as info:
        read(data, content_type)
    assert info.value.status == 400 and info.value.outcome == "bad_request"
    return info.value.message


# -- read_json_object ------------------------------------------------------------------------------
def test_an_object_is_returned_as_parsed():
    assert read(b'{"model": "m1", "n": [1, 2.5, true, null], "s": "\\u00e9t\xc3\xa9"}') == {
        "model": "m1", "n": [1, 2.5, True, None], "s": "été"}


def test_the_body_is_read_whatever_the_content_type_says():
    assert read(b'{"a": 1}', content_type="text/plain") == {"a": 1}
    assert read(b'{"a": 1}', content_type="application/x-www-form-urlencoded") == {"a": 1}


def test_the_body_can_be_read_twice_in_one_request():
    with app.test_request_context("/", method="POST", data=b'{"a": 1}', content_type="application/json"):
        assert read_json_object() == read_json_object() == {"a": 1}


@pytest.mark.parametrize("data", [b"", b"   ", b"\r\n\t "])
def test_an_empty_or_blank_body_is_refused(data):
    assert refused(data) == "request body is empty; expected a JSON object"


def test_invalid_utf8_is_refused():
    assert refused(b'{"model": "\xff\xfe"}') == "request body is not valid UTF-8"


@pytest.mark.parametrize(("data", "message"), [
    (b'{"a": 1,}', "Expecting property name enclosed in double quotes at position 8"),
    (b'{"a" 1}', "Expecting ':' delimiter at position 5"),
    (b'{"a": 1} x', "Extra data at position 9"),
    (b"{'a': 1}", "Expecting property name enclosed in double quotes at position 1"),
    (b'{"a": tru}', "Expecting value at position 6"),
])
def test_invalid_json_names_what_and_where(data, message):
    assert refused(data) == f"invalid JSON in request body: {message}"


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_the_non_json_constants_python_accepts_are_refused(token):
    assert refused(f'{{"temperature": {token}}}') == f"invalid JSON in request body: {token} is not valid JSON"


@pytest.mark.parametrize("number", ["1e400", "-1e400", "1.0e309", "-123456789e999"])
def test_floats_that_overflow_to_infinity_are_refused(number):
    assert refused(f'{{"temperature": {number}}}') == (
        f"invalid JSON in request body: number {number} is out of range for a 64-bit float")


def test_large_finite_and_underflowing_floats_are_kept():
    assert read(b'{"a": 1.7e308, "b": -1.7e308, "c": 1e-400}') == {"a": 1.7e308, "b": -1.7e308, "c": 0.0}


def test_integers_are_bounded_to_64_bits_on_both_sides():
    top, bottom = 2**63 - 1, -(2**63)
    assert read(f'{{"a": {top}, "b": {bottom}}}') == {"a": top, "b": bottom}
    for number in (2**63, -(2**63) - 1, 10**30):
        assert refused(f'{{"seed": {number}}}') == (
            f"invalid JSON in request body: number {number} is out of range for a 64-bit integer")


def test_the_out_of_range_message_quotes_at_most_40_characters_of_the_number():
    number = "9" * 200
    message = refused(f'{{"seed": {number}}}')
    assert message == f"invalid JSON in request body: number {'9' * 40} is out of range for a 64-bit integer"
    # Past Python's 4,300-digit int() limit the message is still ours, not the interpreter's.
    assert refused(f'{{"seed": {"9" * 5000}}}') == message


@pytest.mark.parametrize(("data", "message"), [
    ('{"a": 1}'.encode("utf-16"), "request body is not valid UTF-8"),
    ('{"a": 1}'.encode("utf-32"), "request body is not valid UTF-8"),
    (b"\xef\xbb\xbf" + b'{"a": 1}',
     "invalid JSON in request body: Unexpected UTF-8 BOM (decode using utf-8-sig) at position 0"),
])
def test_only_utf8_without_a_bom_is_read_as_ollama_does(data, message):
    assert refused(data) == message


@pytest.mark.parametrize("data", [b"[" * 100_000, b'{"a":' * 100_000, b'{"a": ' + b"[" * 100_000])
def test_hostile_nesting_is_a_400_not_a_crash(data):
    assert refused(data) == "invalid JSON in request body: nested too deeply"


def test_nesting_within_the_limit_parses():
    depth = 100
    body = read('{"a": ' + "[" * depth + "]" * depth + "}")
    inner = body["a"]
    for _ in range(depth - 1):
        (inner,) = inner
    assert inner == []


@pytest.mark.parametrize("data", [b"[]", b'[{"model": "m"}]', b'"text"', b"42", b"3.5", b"true", b"null"])
def test_json_that_is_not_an_object_is_refused(data):
    assert refused(data) == "request body must be a JSON object"


def test_a_bad_body_error_does_not_chain_the_parser_exception():
    with pytest.raises(ClientRequestError) as info:
        read(b"{")
    assert info.value.__cause__ is None and info.value.__suppress_context__ is True


# -- require_model_name ----------------------------------------------------------------------------
def test_the_model_field_is_returned():
    assert require_model_name({"model": "llama3:8b"}, None) == "llama3:8b"


def test_the_first_present_key_in_order_wins():
    keys = ("model", "name")
    assert require_model_name({"name": "b", "model": "a"}, None, keys=keys) == "a"
    assert require_model_name({"name": "b"}, None, keys=keys) == "b"
    assert require_model_name({"model": "", "name": "b"}, None, keys=keys) == "b"
    assert require_model_name({"model": None, "name": "b"}, None, keys=keys) == "b"
    assert require_model_name({"name": "b", "model": "a"}, None, keys=("name", "model")) == "b"


def test_only_the_given_keys_are_read():
    with pytest.raises(ClientRequestError, match="^model is required$"):
        require_model_name({"model": "a"}, None, keys=("name",))


@pytest.mark.parametrize("body", [{}, {"model": None}, {"model": ""}])
def test_the_default_model_stands_in_when_none_is_asked_for(body):
    assert require_model_name(body, "default-m") == "default-m"


@pytest.mark.parametrize("default", [None, ""])
def test_no_model_and_no_default_is_a_400(default):
    with pytest.raises(ClientRequestError, match="^model is required$") as info:
        require_model_name({"model": ""}, default)
    assert info.value.status == 400


@pytest.mark.parametrize("value", [1, 0, 1.5, True, False, ["m"], {"name": "m"}])
def test_a_model_that_is_not_a_string_is_refused_naming_its_key(value):
    with pytest.raises(ClientRequestError, match="^'name' must be a string$"):
        require_model_name({"name": value}, "default-m", keys=("name",))


def test_a_non_string_model_is_refused_even_with_a_later_valid_key():
    with pytest.raises(ClientRequestError, match="^'model' must be a string$"):
        require_model_name({"model": 7, "name": "ok"}, None, keys=("model", "name"))


@pytest.mark.parametrize("value", ["a\nb", "a\x00", "\tm", "m\x1f", "m\r", "m\x7f", "m\x85", "m\u2028", "m\u2029"])
def test_control_characters_are_refused(value):
    with pytest.raises(ClientRequestError, match="^'model' is not a valid model name$"):
        require_model_name({"model": value}, None)


def test_names_up_to_512_characters_are_accepted():
    assert require_model_name({"model": "m" * 512}, None) == "m" * 512
    with pytest.raises(ClientRequestError, match="^'model' is not a valid model name$"):
        require_model_name({"model": "m" * 513}, None)


def test_ordinary_punctuation_and_unicode_are_accepted():
    for name in ("org/Model-7B:Q4_K_M", "hf.co/user/repo:latest", "модель", "a b"):
        assert require_model_name({"model": name}, None) == name


# -- stream_flag -----------------------------------------------------------------------------------
@pytest.mark.parametrize("default", [True, False])
def test_absent_or_null_stream_is_the_default(default):
    assert stream_flag({}, default=default) is default
    assert stream_flag({"stream": None}, default=default) is default


@pytest.mark.parametrize("value", [True, False])
def test_a_boolean_stream_is_taken_as_is(value):
    assert stream_flag({"stream": value}, default=not value) is value


@pytest.mark.parametrize("value", [0, 1, "true", "false", "", [], {}, 1.0])
def test_a_non_boolean_stream_is_refused(value):
    with pytest.raises(ClientRequestError, match="^'stream' must be true or false$") as info:
        stream_flag({"stream": value}, default=True)
    assert info.value.status == 400

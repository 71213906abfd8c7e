"""bridge/logs.py: one line per event on stdout, JSON or text, carrying the request id; the access
line is one compact JSON object per request (written without a LogRecord), with the instance name,
and through the app it names the inbound key, never the key itself. Every test restores the
``bridge`` logger and the module's globals (configure_logging changes process-wide state)."""

from __future__ import annotations

import json
import logging
import re

import pytest
from flask import Flask, g

from bridge import logs
from bridge.app import create_app
from bridge.config import Settings
from bridge.logs import access, configure_logging, set_instance

ISO = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z"
TEXT_TIME = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}"


@pytest.fixture(autouse=True)
def restore_logging():
    logger = logging.getLogger("bridge")
    saved = (list(logger.handlers), logger.level, logger.propagate, logs._access_writer, dict(logs._access_extra),
             logging._srcfile)
    yield
    handlers, level, propagate, writer, extra, srcfile = saved
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    for handler in handlers:
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = propagate
    logs._access_writer = writer
    logs._access_extra.clear()
    logs._access_extra.update(extra)
    logging._srcfile = srcfile


def lines(capsys) -> list[str]:
    out = capsys.readouterr().out
    assert out.endswith("\n") or out == ""
    return out.splitlines()


def json_lines(capsys) -> list[dict]:
    return [json.loads(line) for line in lines(capsys)]


app = Flask(__name__)


# -- the JSON and text formats -------------------------------------------------------------------------
def test_json_line_has_the_fixed_fields_and_the_extras(capsys):
    configure_logging("INFO", "json")
    logging.getLogger("bridge.some.module").info("hello %s", "world", extra={"backend": "a", "n": 3})
    (line,) = json_lines(capsys)
    assert re.fullmatch(ISO, line.pop("ts"))
    assert line == {"level": "INFO", "logger": "bridge.some.module", "msg": "hello world", "backend": "a", "n": 3}


def test_extras_never_overwrite_the_fixed_fields(capsys):
    configure_logging("INFO", "json")
    logging.getLogger("bridge").warning("real", extra={"ts": "fake", "level": "fake", "logger": "fake"})
    (line,) = json_lines(capsys)
    assert (line["level"], line["logger"], line["msg"]) == ("WARNING", "bridge", "real")
    assert re.fullmatch(ISO, line["ts"])


def test_the_request_id_is_on_every_line_inside_a_request_and_absent_outside(capsys):
    configure_logging("INFO", "json")
    log = logging.getLogger("bridge.x")
    with app.test_request_context("/"):
        g.request_id = "rid-123"
        log.info("inside")
        log.error("also inside")
    log.info("outside")
    inside, also, outside = json_lines(capsys)
    assert inside["request_id"] == also["request_id"] == "rid-123"
    assert "request_id" not in outside


def test_a_request_without_an_id_yet_logs_no_request_id(capsys):
    configure_logging("INFO", "json")
    with app.test_request_context("/"):
        logging.getLogger("bridge").info("early")
    (line,) = json_lines(capsys)
    assert "request_id" not in line


def test_an_explicit_request_id_is_kept(capsys):
    """Greenlets outside the request context pass the id with ``extra=``; the filter keeps it."""
    configure_logging("INFO", "json")
    with app.test_request_context("/"):
        g.request_id = "from-context"
        logging.getLogger("bridge").info("x", extra={"request_id": "passed"})
    logging.getLogger("bridge").info("y", extra={"request_id": "passed-outside"})
    first, second = json_lines(capsys)
    assert (first["request_id"], second["request_id"]) == ("passed", "passed-outside")


def test_exceptions_are_in_the_line(capsys):
    configure_logging("INFO", "json")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("bridge").exception("failed")
    (line,) = json_lines(capsys)
    assert line["msg"] == "failed" and line["level"] == "ERROR"
    assert line["exc"].startswith("Traceback") and "RuntimeError: boom" in line["exc"]


def test_one_line_per_event_even_with_newlines_and_non_ascii(capsys):
    configure_logging("INFO", "json")
    logging.getLogger("bridge").info("two\nlines", extra={"prompt": "été\n日本"})
    out = lines(capsys)
    assert len(out) == 1
    assert "été" in out[0]  # kept as UTF-8, not \u-escaped
    assert json.loads(out[0])["prompt"] == "été\n日本"


def test_a_lone_surrogate_from_client_input_does_not_lose_the_line(capsys):
    configure_logging("INFO", "json")
    logging.getLogger("bridge").info("bad", extra={"model": "a\ud800b"})
    (line,) = lines(capsys)
    assert "\\ud800" in line
    assert json.loads(line)["model"] == "a\ud800b"


def test_values_json_cannot_encode_are_written_as_text(capsys):
    configure_logging("INFO", "json")
    logging.getLogger("bridge").info("x", extra={"obj": frozenset({7}), "when": b"raw"})
    (line,) = json_lines(capsys)
    assert (line["obj"], line["when"]) == ("frozenset({7})", "b'raw'")


def test_text_format(capsys):
    configure_logging("INFO", "text")
    log = logging.getLogger("bridge.x")
    log.info("plain")
    with app.test_request_context("/"):
        g.request_id = "rid-7"
        log.warning("with %s", "extras", extra={"backend": "a", "status": 502})
    plain, extras = lines(capsys)
    assert re.fullmatch(TEXT_TIME + r",\d{3} INFO bridge\.x \[-\] plain", plain), plain
    assert re.fullmatch(TEXT_TIME + r",\d{3} WARNING bridge\.x \[rid-7\] with extras backend=a status=502",
                        extras), extras


def test_the_level_filters_and_configure_is_idempotent(capsys):
    configure_logging("INFO", "json")
    configure_logging("WARNING", "json")
    log = logging.getLogger("bridge.x")
    log.info("dropped")
    log.warning("kept")
    assert [line["msg"] for line in json_lines(capsys)] == ["kept"]  # one handler, not two
    bridge_logger = logging.getLogger("bridge")
    assert len(bridge_logger.handlers) == 1 and bridge_logger.propagate is False


def test_other_loggers_are_left_alone(capsys):
    configure_logging("INFO", "json")
    logging.getLogger("not.bridge").warning("elsewhere")
    assert "elsewhere" not in capsys.readouterr().out


# -- the access line ---------------------------------------------------------------------------------------
FIELDS = {"request_id": "rid-1", "route": "/api/chat", "method": "POST", "status": 200, "duration_ms": 12.5,
          "model": "m1", "outcome": "ok", "stream": True, "ttft_ms": None, "tokens_in": 3, "tokens_out": 7}


def test_the_access_line_is_one_compact_json_object(capsys):
    set_instance(None)
    configure_logging("INFO", "json")
    access(dict(FIELDS))
    (text,) = lines(capsys)
    line = json.loads(text)
    assert text == json.dumps(line, separators=(",", ":"), ensure_ascii=False)  # compact: no spaces
    assert re.fullmatch(ISO, line.pop("ts"))
    assert line == {"level": "INFO", "logger": "bridge.access", "msg": "request", **FIELDS}
    assert list(line)[:3] == ["level", "logger", "msg"]


def test_access_lines_carry_the_instance_name(capsys):
    configure_logging("INFO", "json")
    set_instance("eu-1")
    access({"request_id": "r", "instance": "spoofed"})
    set_instance(None)
    access({"request_id": "r"})
    named, unnamed = json_lines(capsys)
    assert named["instance"] == "eu-1"
    assert "instance" not in unnamed


def test_access_lines_are_off_above_info(capsys):
    configure_logging("WARNING", "json")
    access(dict(FIELDS))
    assert capsys.readouterr().out == ""


def test_the_text_access_line(capsys):
    set_instance(None)
    configure_logging("INFO", "text")
    access({"request_id": "rid-9", "route": "/api/tags", "status": 200})
    access({"route": "/", "status": 404})
    first, second = lines(capsys)
    assert re.fullmatch(TEXT_TIME + r" INFO bridge\.access \[rid-9\] request route=/api/tags status=200", first)
    assert re.fullmatch(TEXT_TIME + r" INFO bridge\.access \[-\] request route=/ status=404", second)


def test_the_access_line_follows_a_stream_replaced_on_the_handler(capsys, tmp_path):
    configure_logging("INFO", "json")
    handler = logging.getLogger("bridge").handlers[0]
    with open(tmp_path / "access.log", "w", encoding="utf-8") as f:
        handler.setStream(f)
        access({"request_id": "r"})
    assert json.loads((tmp_path / "access.log").read_text())["request_id"] == "r"
    assert capsys.readouterr().out == ""


def test_an_access_line_orjson_refuses_is_still_one_json_line(capsys):
    set_instance(None)
    configure_logging("INFO", "json")
    access({"request_id": "r", "tokens_in": 2**70, "model": "x\udc80"})
    (text,) = lines(capsys)
    line = json.loads(text)
    assert (line["tokens_in"], line["model"]) == (2**70, "x\udc80")


def test_access_without_configure_goes_through_plain_logging(monkeypatch):
    monkeypatch.setattr(logs, "_access_writer", None)
    set_instance("eu-2")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    access_logger = logging.getLogger("bridge.access")
    logging.getLogger("bridge").setLevel("INFO")
    access_logger.addHandler(handler)
    try:
        access({"request_id": "r", "status": 200})
    finally:
        access_logger.removeHandler(handler)
    (record,) = records
    assert (record.getMessage(), record.status, record.request_id, record.instance) == ("request", 200, "r", "eu-2")


# -- through the app: one access line per request, the key's name but never the key -------------------------
def test_each_request_gets_one_access_line_naming_the_key_not_the_secret(capsys):
    secret = "sk-very-secret-inbound-key"
    settings = Settings(demo_token_delay_s=0.0, log_level="INFO", log_format="json", instance_name="edge-3",
                        api_keys=(secret,), api_key_names=("team-a",))
    client = create_app(settings).test_client()
    capsys.readouterr()
    auth = {"Authorization": f"Bearer {secret}"}
    resp = client.post("/api/chat", headers=auth, json={"model": "demo", "stream": False,
                                                       "messages": [{"role": "user", "content": "hi"}]})
    assert resp.status_code == 200
    denied = client.get("/api/tags", headers={"Authorization": "Bearer sk-wrong-key"})
    assert denied.status_code == 401
    out = capsys.readouterr().out
    access_lines = [text for text in out.splitlines() if '"logger":"bridge.access"' in text]
    assert len(access_lines) == 2, out
    ok, refused = (json.loads(text) for text in access_lines)
    for text in access_lines:
        assert text == json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)
    assert (ok["route"], ok["status"], ok["model"], ok["key"], ok["instance"]) == (
        "/api/chat", 200, "demo", "team-a", "edge-3")
    assert ok["request_id"] == resp.headers["X-Request-ID"]
    assert (refused["status"], refused["request_id"]) == (401, denied.headers["X-Request-ID"])
    assert "key" not in refused
    assert secret not in out and "sk-wrong-key" not in out

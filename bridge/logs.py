"""Log set-up: one line per event, JSON or text, every line carrying the request id."""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import datetime, timezone

import orjson  # the access line is written on every request (bridge/ndjson.py says why)
from flask import g, has_request_context

from .clock import rfc3339_utc

__all__ = ["access", "configure_logging", "set_instance"]

# Attributes every LogRecord has; anything else was passed with ``extra=`` and is printed.
_RESERVED = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime", "request_id"}


def _request_id() -> str | None:
    return getattr(g, "request_id", None) if has_request_context() else None


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = _request_id()
        return True


def _iso(created_s: float) -> str:
    return datetime.fromtimestamp(created_s, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")




def _dumps_fast(line: dict) -> str:
    """``_dumps`` for the access line (compact): orjson when it takes the line, else ``_dumps``."""
    try:
        return orjson.dumps(line, default=str).decode()
    except TypeError:  # lone surrogates, integers beyond 64 bits: the standard library's way
        return _dumps(line)


def _dumps(line: dict) -> str:
    text = json.dumps(line, default=str, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from client input: escape instead of losing the line
        text = json.dumps(line, default=str)
    return text


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", "request_id", ...extras}``; extras never overwrite these."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": _iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            line["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _RESERVED and key not in line:
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return _dumps(line)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in vars(record).items() if k not in _RESERVED)
        rid = getattr(record, "request_id", None)
        base = f"{self.formatTime(record)} {record.levelname} {record.name} [{rid or '-'}] {record.getMessage()}"
        return f"{base} {extras}".rstrip()


class _AccessWriter:
    """Writes the one access line per request straight to the log stream.

    It is on every request's path: a LogRecord, filters and a Formatter cost about 30 us there,
    this about a third of that. The line is the one the JSON/text formatter would write for
    ``logging.getLogger("bridge.access").info("request", extra=fields)``.
    """

    def __init__(self, handler: logging.StreamHandler, fmt: str, enabled: bool) -> None:
        self.handler = handler  # its stream is looked up per line, so setStream() is honoured
        self.json = fmt == "json"
        self.enabled = enabled

    def write(self, fields: dict) -> None:
        if not self.enabled:
            return
        now = time.time()
        if self.json:
            text = _dumps_fast({"ts": rfc3339_utc(now), "level": "INFO", "logger": "bridge.access", "msg": "request",
                                **fields})
        else:
            extras = " ".join(f"{k}={v}" for k, v in fields.items() if k != "request_id")
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
            text = f"{stamp} INFO bridge.access [{fields.get('request_id') or '-'}] request {extras}"
        stream = self.handler.stream
        stream.write(text + "\n")
        stream.flush()


_access_writer: _AccessWriter | None = None
_access_extra: dict = {}  # fields every access line carries (set_instance)


def set_instance(name: str | None) -> None:
    """Every access line names the instance (INSTANCE_NAME) that served it: logs of a fleet mix."""
    _access_extra.clear()
    if name:
        _access_extra["instance"] = name


def access(fields: dict) -> None:
    """Log the request's access line (fast path once :func:`configure_logging` has run)."""
    if _access_extra:
        fields = {**fields, **_access_extra}
    if _access_writer is not None:
        _access_writer.write(fields)
    else:  # the bridge did not set up logging (library use, unit tests): plain logging
        logging.getLogger("bridge.access").info("request", extra=fields)


def configure_logging(level: str, fmt: str) -> None:
    """Route the ``bridge`` loggers to stdout in the chosen format (idempotent)."""
    # Our lines never show the caller's file and line: skip collecting them on every record (the
    # logging HOWTO's "Optimization" section). Process and thread ids stay: these switches are
    # global, and gunicorn's own formats use %(process)d, which fails on None ("--- Logging
    # error ---" instead of "Worker exiting").
    logging._srcfile = None
    logger = logging.getLogger("bridge")
    logger.setLevel(level)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_RequestIdFilter())
    logger.addHandler(handler)
    global _access_writer
    _access_writer = _AccessWriter(handler, fmt, logging.getLevelName(level) <= logging.INFO)

"""Upstream client: one backend's calls, with its key, timeouts, deadline and retries.

Knows nothing of Flask or of the wire (``transport.py`` sends; answers are
``BackendResponse``). Every failure leaves as a ``bridge.errors.UpstreamError`` subclass, decided
before any byte has been handed to the caller, so routes can still answer with a real HTTP status.

Retries happen only here, i.e. before the first byte reaches the client: on connect errors and on
429/502/503/504, with exponential backoff and full jitter, honouring ``Retry-After``, and never past
the request deadline. ``max_retries`` counts retries, so 0 means exactly one attempt.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from gevent import Timeout

from .backends import Backend
from .config import DEFAULT_BACKEND, Settings
from .errors import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamTimeout,
)
from .ndjson import json_bytes
from .translate.backend_errors import backend_error_message
from .transport import Answer, ConnectTimeout, RequestsTransport, StaleConnection, Transport

__all__ = ["UpstreamClient", "Deadline"]

log = logging.getLogger(__name__)

_RETRY_STATUSES = frozenset({429, 502, 503, 504})
_MAX_ERROR_BODY_BYTES = 64 * 1024
_MAX_RETRY_AFTER_S = 86400.0  # a larger (or absurd) Retry-After is passed on as one day
_T = TypeVar("_T")


@dataclass
class Deadline:
    """A point in monotonic time after which the whole call has failed."""

    at_s: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    def remaining_s(self) -> float:
        return self.at_s - time.monotonic()


class UpstreamClient:
    """Calls one OpenAI-compatible backend for one worker process."""

    def __init__(self, settings: Settings, *, sleep: Callable[[float], None] = time.sleep,
                 backend: Backend | None = None, secrets: tuple[str, ...] = (),
                 transport: Transport | None = None) -> None:
        """One client per backend (``backend``: its URL, key, timeouts, retries; default: the
        single-backend settings). ``secrets``: every backend key, all removed from messages.
        ``transport``: the wire (default: pooled HTTP; the demo backend and tests plug in here)."""
        self._settings = settings
        self.name = backend.name if backend is not None else DEFAULT_BACKEND
        base_url = backend.base_url if backend is not None else settings.backend_url
        api_key = backend.api_key if backend is not None else settings.api_key
        self._base = base_url.rstrip("/")
        self._connect_timeout_s = _override(backend, "connect_timeout_s", settings.connect_timeout_s)
        self.request_timeout_s = _override(backend, "request_timeout_s", settings.request_timeout_s)
        self.max_retries = _override(backend, "max_retries", settings.max_retries)
        self._secrets = tuple(dict.fromkeys(k for k in (api_key, *secrets) if k))
        self._sleep = sleep
        self._transport: Transport = transport if transport is not None else RequestsTransport(settings)
        self._headers = {"Accept-Encoding": "identity"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"

    def redact(self, text: str) -> str:
        """``text`` with the backend key removed (some backends echo it in their error messages)."""
        for key in self._secrets:
            if key in text:
                text = text.replace(key, "[redacted]")
        return text

    # -- calls ---------------------------------------------------------------------------------
    def open(self, method: str, path: str, *, json_body: dict[str, Any] | None = None, stream: bool,
             deadline: Deadline, request_id: str | None = None, max_retries: int | None = None) -> Answer:
        """Send one request (with retries) and return an answer whose status is below 400.

        For ``stream=True`` the body is not read; the caller must ``release()`` or ``close()`` it.
        ``max_retries`` overrides this backend's (0 when another backend can take over at once).
        """
        retries = self.max_retries if max_retries is None else max_retries
        url = f"{self._base}{path}"
        headers = dict(self._headers)
        if request_id:
            headers["X-Request-ID"] = request_id
        body = None
        if json_body is not None:
            body = json_bytes(json_body)
            headers["Content-Type"] = "application/json"
            headers["Content-Length"] = str(len(body))
        idle_s = self._settings.stream_idle_timeout_s
        read_timeout_s = idle_s if stream else self.request_timeout_s
        attempt = 0
        stale_retried = False
        while True:
            remaining_s = deadline.remaining_s()
            if remaining_s <= 0:
                raise UpstreamTimeout("backend did not answer before the request deadline")
            timeout = (min(self._connect_timeout_s, remaining_s), min(read_timeout_s, remaining_s))
            error: UpstreamError
            try:
                with _bounded(None if stream else remaining_s):
                    resp = self._transport.send(method, url, body, headers, stream=stream, timeout=timeout,
                                                idle_timeout_s=idle_s)
                    resp.from_backend(self.name, self.redact)
                    if resp.status < 400:
                        return resp
                    error = self._http_error(resp)
            except StaleConnection:
                if stale_retried:
                    error = UpstreamConnectError("backend unreachable: connection failed")
                else:
                    # A pooled keep-alive connection the backend closed as we reused it (llama-server
                    # drops idle ones after 5 s): nothing was answered, so one fresh connection is
                    # tried at once, whatever MAX_RETRIES says.
                    stale_retried = True
                    continue
            except (UpstreamConnectError, ConnectTimeout) as exc:
                error = exc  # nothing was sent: the retry policy decides
            except Timeout:
                raise UpstreamTimeout("backend did not answer before the request deadline") from None
            delay_s = self._retry_delay_s(error, attempt, deadline, retries)
            if delay_s is None:
                raise error
            attempt += 1
            log.warning("retrying backend call", extra={"backend": self.name, "attempt": attempt,
                                                         "outcome": error.outcome,
                                                         "delay_ms": round(delay_s * 1000)})
            self._sleep(delay_s)

    def _http_error(self, resp: Answer) -> UpstreamHTTPError:
        """A bounded read of an error answer, as the error it stands for (the connection dropped)."""
        retry_after = resp.header("Retry-After")
        body = resp.error_body(_MAX_ERROR_BODY_BYTES)
        message = self.redact(backend_error_message(resp.status, body, resp.header("Content-Type")))
        return UpstreamHTTPError(resp.status, message, _retry_after_s(retry_after))

    def _retry_delay_s(self, error: UpstreamError, attempt: int, deadline: Deadline,
                       retries: int | None = None) -> float | None:
        if attempt >= (self.max_retries if retries is None else retries):
            return None
        retryable = isinstance(error, (UpstreamConnectError, UpstreamTimeout)) or (
            isinstance(error, UpstreamHTTPError) and error.status in _RETRY_STATUSES)
        if not retryable:
            return None
        backoff_s = random.uniform(0, self._settings.retry_backoff_s * (2 ** attempt))
        retry_after_s = getattr(error, "retry_after_s", None)
        delay_s = max(backoff_s, retry_after_s or 0.0)
        # Only retry when the wait still leaves time for an attempt.
        if delay_s >= deadline.remaining_s() - 0.05:
            return None
        return delay_s

    def json(self, method: str, path: str, *, json_body: dict[str, Any] | None = None, deadline: Deadline,
             request_id: str | None = None) -> dict[str, Any]:
        """Non-streamed call returning the parsed JSON object."""
        return self.open(method, path, json_body=json_body, stream=False, deadline=deadline,
                         request_id=request_id).json()


def _override(backend: Backend | None, attr: str, default: _T) -> _T:
    value = getattr(backend, attr, None) if backend is not None else None
    return default if value is None else value


def _retry_after_s(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delay-seconds or HTTP-date), finite and capped; else None."""
    if not value or not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value.strip())
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    if not math.isfinite(seconds):
        return None  # "nan"/"inf" would crash the header we pass on
    return min(max(0.0, seconds), _MAX_RETRY_AFTER_S)


def _bounded(seconds: float | None) -> AbstractContextManager[Any]:
    """gevent bounds a whole non-streamed call (a trickling body would outlast every read timeout)."""
    return Timeout(seconds) if seconds else nullcontext()

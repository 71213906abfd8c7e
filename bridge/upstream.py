"""Upstream client: one pooled ``requests.Session`` per worker process, timeouts, retries.

Knows nothing of Flask. Every failure leaves as a ``bridge.errors.UpstreamError`` subclass, decided
before any byte has been handed to the caller, so routes can still answer with a real HTTP status.

Retries happen only here, i.e. before the first byte reaches the client: on connect errors and on
429/502/503/504, with exponential backoff and full jitter, honouring ``Retry-After``, and never past
the request deadline. ``max_retries`` counts retries, so 0 means exactly one attempt.
"""

from __future__ import annotations

import logging
import math
import os
from http.client import RemoteDisconnected
import random
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import NewConnectionError, ProtocolError, ReadTimeoutError

from .backends import Backend
from .config import DEFAULT_BACKEND, DEMO_BACKEND_URL, Settings
from .errors import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamProtocolError,
    UpstreamTimeout,
)
from .ndjson import json_bytes
from .translate.backend_errors import backend_error_message

__all__ = ["UpstreamClient", "Deadline", "json_object"]

log = logging.getLogger(__name__)

_RETRY_STATUSES = frozenset({429, 502, 503, 504})
_NO_PROXIES: dict[str, str] = {}
_MAX_ERROR_BODY_BYTES = 64 * 1024
_READ_SIZE = 64 * 1024
_MAX_RETRY_AFTER_S = 86400.0  # a larger (or absurd) Retry-After is passed on as one day


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
    """Calls the OpenAI-compatible backend for one worker process."""

    def __init__(self, settings: Settings, *, sleep: Callable[[float], None] = time.sleep,
                 backend: Backend | None = None, secrets: tuple[str, ...] = ()) -> None:
        """One client per backend (``backend``: its URL, key, timeouts, retries; default: the
        single-backend settings). ``secrets``: every backend key, all removed from messages."""
        self._settings = settings
        self.name = backend.name if backend is not None else DEFAULT_BACKEND
        base_url = backend.base_url if backend is not None else settings.backend_url
        api_key = backend.api_key if backend is not None else settings.api_key
        self._base = base_url.rstrip("/")
        self._demo = base_url == DEMO_BACKEND_URL and settings.demo_backend
        self._connect_timeout_s = _override(backend, "connect_timeout_s", settings.connect_timeout_s)
        self.request_timeout_s = _override(backend, "request_timeout_s", settings.request_timeout_s)
        self.max_retries = _override(backend, "max_retries", settings.max_retries)
        self._secrets = tuple(dict.fromkeys(k for k in (api_key, *secrets) if k))
        self._sleep = sleep
        self._session: requests.Session | None = None
        self._session_pid = 0
        self._headers = {"Accept-Encoding": "identity"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"

    # -- session -------------------------------------------------------------------------------
    def session(self) -> requests.Session:
        """The worker's session, created on first use in this process (after gevent patching)."""
        if self._session is None or self._session_pid != os.getpid():
            self._session = self._new_session()
            self._session_pid = os.getpid()
        return self._session

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        # A stream holds its connection for its whole life: keep as many as we may serve at once.
        # pool_block stays False: requests would wait forever on an exhausted pool (urllib3#3061).
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=self._settings.pool_maxsize, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        if self._demo:
            from .demo_backend import DemoAdapter

            session.mount(DEMO_BACKEND_URL.rsplit("/v1", 1)[0], DemoAdapter(self._settings.demo_token_delay_s))
        session.verify = self._settings.verify_ssl
        session.trust_env = False  # no proxies or netrc picked up behind our back
        return session

    def redact(self, text: str) -> str:
        """``text`` with the backend key removed (some backends echo it in their error messages)."""
        for key in self._secrets:
            if key in text:
                text = text.replace(key, "[redacted]")
        return text

    # -- calls ---------------------------------------------------------------------------------
    def open(self, method: str, path: str, *, json_body: dict | None = None, stream: bool,
             deadline: Deadline, request_id: str | None = None, max_retries: int | None = None) -> requests.Response:
        """Send one request (with retries) and return a response whose status is 2xx.

        For ``stream=True`` the body is not read; the caller must close the response.
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
        read_timeout_s = self._settings.stream_idle_timeout_s if stream else self.request_timeout_s
        attempt = 0
        stale_retried = False
        while True:
            remaining_s = deadline.remaining_s()
            if remaining_s <= 0:
                raise UpstreamTimeout("backend did not answer before the request deadline")
            timeout = (min(self._connect_timeout_s, remaining_s), min(read_timeout_s, remaining_s))
            try:
                with _guard(None if stream else remaining_s):
                    resp = self._send(method, url, body, headers, stream=stream, timeout=timeout)
                    if resp.status_code < 400:
                        return resp
                    error = _http_error(resp, streamed=stream, redact=self.redact)
            except requests.exceptions.ConnectTimeout:
                error = UpstreamTimeout("timed out connecting to the backend")
            except (requests.exceptions.ConnectionError, requests.exceptions.InvalidURL) as exc:
                if _is_read_timeout(exc):
                    raise UpstreamTimeout("backend timed out") from None
                if not stale_retried and _is_stale_connection(exc):
                    # A pooled keep-alive connection the backend closed as we reused it (llama-server
                    # drops idle ones after 5 s): nothing was answered, so one fresh connection is
                    # tried at once, whatever MAX_RETRIES says.
                    stale_retried = True
                    continue
                error = UpstreamConnectError("backend unreachable: connection failed")
            except requests.exceptions.Timeout:
                raise UpstreamTimeout("backend timed out") from None
            except _GeventTimeout:
                raise UpstreamTimeout("backend did not answer before the request deadline") from None
            except requests.exceptions.RequestException as exc:
                raise UpstreamProtocolError(f"backend request failed: {type(exc).__name__}") from None
            delay_s = self._retry_delay_s(error, attempt, deadline, retries)
            if delay_s is None:
                raise error
            attempt += 1
            log.warning("retrying backend call", extra={"backend": self.name, "attempt": attempt,
                                                         "outcome": error.outcome,
                                                         "delay_ms": round(delay_s * 1000)})
            self._sleep(delay_s)

    def _send(self, method: str, url: str, body: bytes | None, headers: dict, *, stream: bool,
              timeout: tuple[float, float]) -> requests.Response:
        """One HTTP exchange through the session's pooled adapter.

        ``Session.request`` re-merges session settings, re-parses the URL and re-encodes the body
        on every call (a quarter of a worker's CPU on short streams, perf/RESULTS.md); our URL is
        built from a validated base and a fixed path, and the session has no cookies, proxies,
        auth or redirects to apply, so the request is prepared here and handed to the adapter.
        """
        session = self.session()
        prepared = requests.PreparedRequest()
        prepared.method = method
        prepared.url = url
        prepared.headers = CaseInsensitiveDict(headers)
        prepared.body = body
        prepared.hooks = {"response": []}
        resp = session.get_adapter(url).send(prepared, stream=stream, timeout=timeout, verify=session.verify,
                                             cert=None, proxies=_NO_PROXIES)
        # When the status line and headers arrived (monotonic ns): Ollama's prompt_eval_duration
        # of a non-streamed answer ends here when the backend reports no timings of its own.
        resp.headers_received_ns = time.monotonic_ns()
        if not stream:
            resp.content  # noqa: B018 - read the body now (what Session.send does without stream=True)
        return resp

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

    def json(self, method: str, path: str, *, json_body: dict | None = None, deadline: Deadline,
             request_id: str | None = None) -> dict:
        """Non-streamed call returning the parsed JSON object."""
        return json_object(self.open(method, path, json_body=json_body, stream=False, deadline=deadline,
                                     request_id=request_id))

    def iter_raw(self, resp: requests.Response) -> Iterator[bytes]:
        """Yield body bytes as they arrive (never waiting to fill a fixed-size block)."""
        raw = resp.raw
        try:
            while True:
                data = raw.read1(_READ_SIZE)
                if not data:
                    return
                yield data
        except (ReadTimeoutError, TimeoutError):
            raise UpstreamTimeout(
                f"backend sent nothing for {self._settings.stream_idle_timeout_s:g} s mid-stream") from None
        except (ProtocolError, OSError, requests.exceptions.RequestException) as exc:
            if _is_read_timeout(exc):
                raise UpstreamTimeout("backend stalled mid-stream") from None
            raise UpstreamProtocolError("backend connection broke mid-stream") from None


def _override(backend: Backend | None, attr: str, default):
    value = getattr(backend, attr, None) if backend is not None else None
    return default if value is None else value


def json_object(resp: requests.Response) -> dict:
    """The parsed JSON object of a non-streamed response, or UpstreamProtocolError."""
    try:
        data = resp.json()
    except ValueError:
        raise UpstreamProtocolError("backend returned a body that is not JSON") from None
    if not isinstance(data, dict):
        raise UpstreamProtocolError("backend returned JSON that is not an object")
    return data


def _http_error(resp: requests.Response, *, streamed: bool,
                redact: Callable[[str], str] = lambda text: text) -> UpstreamHTTPError:
    """Read a bounded error body and turn it into an UpstreamHTTPError."""
    try:
        # Without stream=True requests has already read the body into .content.
        body = resp.raw.read(_MAX_ERROR_BODY_BYTES) if streamed else resp.content[:_MAX_ERROR_BODY_BYTES]
    except Exception:  # noqa: BLE001 - a broken error body still yields an error with the status
        body = b""
    finally:
        resp.close()
    message = redact(backend_error_message(resp.status_code, body or b"", resp.headers.get("Content-Type")))
    return UpstreamHTTPError(resp.status_code, message, _retry_after_s(resp.headers.get("Retry-After")))


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


def _is_stale_connection(exc: BaseException) -> bool:
    """The request went out on an existing connection that was found closed (no answer at all).

    A refused or unreachable backend fails while *establishing* a connection (urllib3's
    NewConnectionError): that is a real connect error, handled by the normal retry policy.
    """
    seen = 0
    stale = False
    while exc is not None and seen < 8:
        if isinstance(exc, NewConnectionError):
            return False
        if isinstance(exc, (RemoteDisconnected, ConnectionResetError, BrokenPipeError)):
            stale = True
        exc = exc.__context__ or (exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None)
        seen += 1
    return stale


def _is_read_timeout(exc: BaseException) -> bool:
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, (ReadTimeoutError, TimeoutError, requests.exceptions.ReadTimeout)):
            return True
        exc = exc.__context__ or (exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None)
        seen += 1
    return False


try:  # gevent bounds a whole non-streamed call; without gevent the read timeout is the bound.
    from gevent import Timeout as _GeventTimeout

    def _guard(seconds: float | None):
        return _GeventTimeout(seconds) if seconds else nullcontext()
except ImportError:  # pragma: no cover - gevent is a hard dependency of the deployment
    class _GeventTimeout(Exception):  # type: ignore[no-redef]
        pass

    def _guard(seconds: float | None):
        return nullcontext()

"""The wire under the upstream client: one HTTP exchange on a pooled connection.

:class:`Transport` is what :class:`bridge.upstream.UpstreamClient` needs; :class:`RequestsTransport`
is the one the bridge runs on (one ``requests`` session per worker process, created after gevent
has patched sockets). Other answerers plug in through ``mounts`` (the built-in demo backend mounts
an in-process adapter for its host) or by passing another ``Transport`` to the client.

Every failure leaves as a :mod:`bridge.errors` upstream error; :class:`StaleConnection` marks a
pooled keep-alive connection found closed as it was reused and :class:`ConnectTimeout` a connection
never made (nothing was sent or answered: safe to resend).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from http.client import RemoteDisconnected
from typing import Any, Protocol

import requests
from requests.adapters import BaseAdapter, HTTPAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import NewConnectionError

from .backend_response import BackendResponse, caused_by_timeout
from .config import Settings
from .errors import UpstreamConnectError, UpstreamProtocolError, UpstreamTimeout

__all__ = ["Answer", "ConnectTimeout", "RequestsTransport", "StaleConnection", "Transport"]

_NO_PROXIES: dict[str, str] = {}


class StaleConnection(UpstreamConnectError):
    """The request went out on a pooled connection the backend had closed: nothing was answered."""


class ConnectTimeout(UpstreamTimeout):
    """No connection within the connect timeout: nothing was sent (safe to retry)."""


class Answer(Protocol):
    """A backend's answer as every caller sees it, whatever the wire (``BackendResponse`` over
    ``requests``, ``WireResponse`` over the bridge's own HTTP client)."""

    status: int
    content_type: str
    backend: str
    headers_received_ns: int

    def from_backend(self, name: str, redact: Callable[[str], str]) -> Answer: ...
    @property
    def content(self) -> bytes: ...
    def json(self) -> dict[str, Any]: ...
    def error_body(self, limit: int) -> bytes: ...
    def header(self, name: str) -> str | None: ...
    def iter_bytes(self) -> Iterator[bytes]: ...
    def redact(self, text: str) -> str: ...
    def when_done(self, callback: Callable[[], None]) -> None: ...
    def close(self) -> None: ...
    def release(self) -> None: ...


class Transport(Protocol):
    def send(self, method: str, url: str, body: bytes | None, headers: dict[str, str], *, stream: bool,
             timeout: tuple[float, float], idle_timeout_s: float) -> Answer:
        """One exchange; the answer (any status) or an upstream error. ``stream=False`` reads the
        whole body before returning."""
        ...


class RequestsTransport:
    """HTTP(S) through a pooled ``requests`` session, one per worker process."""

    def __init__(self, settings: Settings, *, mounts: Mapping[str, BaseAdapter] | None = None) -> None:
        self._pool_maxsize = settings.pool_maxsize
        self._verify = settings.verify_ssl
        self._mounts = dict(mounts or {})
        self._session: requests.Session | None = None
        self._session_pid = 0

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
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=self._pool_maxsize, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        for prefix, mounted in self._mounts.items():
            session.mount(prefix, mounted)
        session.verify = self._verify
        session.trust_env = False  # no proxies or netrc picked up behind our back
        return session

    def send(self, method: str, url: str, body: bytes | None, headers: dict[str, str], *, stream: bool,
             timeout: tuple[float, float], idle_timeout_s: float) -> BackendResponse:
        """One exchange through the session's pooled adapter.

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
        try:
            resp = session.get_adapter(url).send(prepared, stream=stream, timeout=timeout, verify=session.verify,
                                                 cert=None, proxies=_NO_PROXIES)
            # Ollama's prompt_eval_duration of a non-streamed answer ends here when the backend
            # reports no timings of its own.
            headers_ns = time.monotonic_ns()
            if not stream:
                resp.content  # noqa: B018 - read the body now (what Session.send does without stream=True)
        except requests.exceptions.ConnectTimeout:
            raise ConnectTimeout("timed out connecting to the backend") from None
        except (requests.exceptions.ConnectionError, requests.exceptions.InvalidURL) as exc:
            if caused_by_timeout(exc):
                raise UpstreamTimeout("backend timed out") from None
            if _is_stale_connection(exc):
                raise StaleConnection("backend closed a pooled connection") from None
            raise UpstreamConnectError("backend unreachable: connection failed") from None
        except requests.exceptions.Timeout:
            raise UpstreamTimeout("backend timed out") from None
        except requests.exceptions.RequestException as exc:
            raise UpstreamProtocolError(f"backend request failed: {type(exc).__name__}") from None
        return BackendResponse(resp, streamed=stream, headers_received_ns=headers_ns, idle_timeout_s=idle_timeout_s)


def _is_stale_connection(exc: BaseException | None) -> bool:
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

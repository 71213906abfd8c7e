"""OpenAI Responses API (``/v1/responses``): passed through when the backend serves it, else translated.

The first call to a backend tries its own ``/v1/responses``. A 404 (or 405/501) that is not about
the model means the backend lacks the route: that request and the following ones are translated
onto chat completions, and the answer is remembered per backend (bounded; re-probed after
``_RECHECK_S``, so an upgraded backend is noticed). Nothing is stored: ``store`` is accepted and
ignored, and ``previous_response_id`` is refused on the translated path (there is no state to
continue from).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import OrderedDict

from flask import Blueprint, Response

from ..backend_pool import NoBackend
from ..errors import UpstreamHTTPError
from ..metrics.instrument import observation
from ..ndjson import json_bytes
from ..streams import STREAM_HEADERS
from ..streams.events import event_stream
from ..streams.responses_relay import responses_relay, responses_usage
from ..translate import responses_api
from ..translate.backend_errors import model_not_found_in_body
from .common import Services, call_backend, resolve_model
from .params import added_params, call_generation
from .request_body import read_json_object, require_model_name, stream_flag

__all__ = ["ResponsesSupport", "responses_blueprint"]

_RECHECK_S = 600.0
_MISSING_ROUTE = frozenset({404, 405, 501})


class ResponsesSupport:
    """Which backends serve ``/v1/responses`` themselves: backend name -> (served, when learned).

    Keys are backend names from the configuration (never client input), and the map is still
    bounded (oldest forgotten first).
    """

    def __init__(self, *, max_entries: int = 64, recheck_s: float = _RECHECK_S, clock=time.monotonic) -> None:
        self._known: OrderedDict[str, tuple[bool, float]] = OrderedDict()
        self._max = max_entries
        self._recheck_s = recheck_s
        self._clock = clock
        self._lock = threading.Lock()

    def native(self, backend: str) -> bool | None:
        """True/False when known, None when it should be (re)probed."""
        with self._lock:
            entry = self._known.get(backend)
        if entry is None:
            return None
        served, at = entry
        if not served and self._clock() - at > self._recheck_s:
            return None
        return served

    def remember(self, backend: str, served: bool) -> None:
        with self._lock:
            self._known.pop(backend, None)
            self._known[backend] = (served, self._clock())
            while len(self._known) > self._max:
                self._known.popitem(last=False)


def responses_blueprint(services: Services, support: ResponsesSupport | None = None) -> Blueprint:
    bp = Blueprint("responses_api", __name__)
    support = support or ResponsesSupport()

    @bp.post("/v1/responses")
    def create():
        body = read_json_object()
        requested = require_model_name(body, services.settings.default_model)
        obs = observation()
        obs.note_model(requested)  # labelled (bounded) when recorded
        stream = stream_flag(body, default=False)
        backend = resolve_model(requested, services)
        # Backends (by name) not known to lack /v1/responses get the request as it is.
        forwarded = services.modelmap.to_backend_passthrough({**body, "model": requested})
        try:
            resp = call_backend(services, "/responses", forwarded, requested, stream=stream,
                                accept=lambda name: support.native(name) is not False)
        except NoBackend:  # every backend for this model lacks the route: translate
            resp = None
        except UpstreamHTTPError as exc:
            if exc.status not in _MISSING_ROUTE or model_not_found_in_body(exc.message):
                raise
            support.remember(exc.backend, False)
            resp = None
        if resp is not None:
            support.remember(resp.backend, True)
            if stream:
                return Response(obs.stream_wrap(responses_relay(resp, obs)), mimetype="text/event-stream",
                                headers=STREAM_HEADERS)
            try:
                counts = responses_usage(json.loads(resp.content))
            except ValueError:  # relayed as it is, uncounted
                counts = None
            if counts is not None:
                obs.note_tokens(*counts)
            return Response(resp.content, status=resp.status, content_type=resp.content_type)
        return _translated(body, requested, backend, stream)

    def _translated(body: dict, requested: str, backend: str, stream: bool) -> Response:
        obs = observation()
        openai_body = responses_api.responses_request(body, backend, stream=stream,
                                                      think_control=services.think_control)
        base = responses_api.response_object(body, response_id=f"resp_{uuid.uuid4().hex}",
                                             created_at=int(time.time()), model=requested)
        effort = body["reasoning"].get("effort") if isinstance(body.get("reasoning"), dict) else None
        keep_reasoning = effort != "none"
        # Fields the bridge added (stream_options, reasoning controls) are dropped if the backend refuses them.
        resp = call_generation(services, "/chat/completions", openai_body, requested, stream=stream,
                               added=added_params(openai_body, None if effort is None else effort != "none"))
        if not stream:
            reply = responses_api.responses_response(resp.json(), base=base, keep_reasoning=keep_reasoning)
            obs.note_tokens(reply["usage"]["input_tokens"], reply["usage"]["output_tokens"])
            return Response(json_bytes(reply), mimetype="application/json")
        translator = responses_api.ResponsesStream(base=base, keep_reasoning=keep_reasoning)
        events = event_stream(resp, translator, obs, on_error=lambda message, exc: translator.failed(message))
        return Response(obs.stream_wrap(events), mimetype="text/event-stream", headers=STREAM_HEADERS)

    return bp

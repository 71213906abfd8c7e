"""Anthropic Messages API (``/v1/messages``, ``/v1/messages/count_tokens``) on chat-completions backends.

Errors on these paths are rendered in Anthropic's shape by the app's error handler; inbound keys
may come as ``x-api-key`` or ``Authorization: Bearer`` (``routes/auth.py``); ``anthropic-version``
and ``anthropic-beta`` headers are accepted and ignored.
"""

from __future__ import annotations

import uuid

from flask import Blueprint, Response, g

from ..metrics.instrument import observation
from ..ndjson import json_bytes
from ..streams import STREAM_HEADERS
from ..streams.events import event_stream
from ..translate import anthropic
from ..translate.anthropic_stream import MessagesStream
from .common import Services, resolve_model
from .params import added_params, call_generation
from .request_body import read_json_object, require_model_name, stream_flag

__all__ = ["anthropic_blueprint"]


def anthropic_blueprint(services: Services) -> Blueprint:
    bp = Blueprint("anthropic", __name__)

    @bp.after_request
    def request_id_header(response: Response) -> Response:
        # The anthropic SDKs read the id of a failed call from "request-id".
        if "request_id" in g:
            response.headers["request-id"] = g.request_id
        return response

    @bp.post("/v1/messages")
    def messages():
        body = read_json_object()
        requested = require_model_name(body, services.settings.default_model)
        obs = observation()
        obs.note_model(requested)  # labelled (bounded) when recorded
        stream = stream_flag(body, default=False)
        backend = resolve_model(requested, services)
        openai_body = anthropic.messages_request(body, backend, stream=stream,
                                                 think_control=services.think_control)
        message_id = f"msg_{uuid.uuid4().hex[:24]}"
        stop = anthropic.stop_sequences(body)
        keep_thinking = anthropic.keeps_thinking(body)
        thinking = body.get("thinking")
        think = thinking.get("type") != "disabled" if isinstance(thinking, dict) else None
        # Fields the bridge added (stream_options, reasoning controls) are dropped if the backend refuses them.
        resp = call_generation(services, "/chat/completions", openai_body, requested, stream=stream,
                               added=added_params(openai_body, think))
        if not stream:
            reply = anthropic.messages_response(resp.json(), model=requested, message_id=message_id,
                                                stop=stop, keep_thinking=keep_thinking)
            obs.note_tokens(reply["usage"].get("input_tokens"), reply["usage"].get("output_tokens"))
            return Response(json_bytes(reply), mimetype="application/json")
        translator = MessagesStream(message_id=message_id, model=requested, stop=stop, keep_thinking=keep_thinking)
        events = event_stream(resp, translator, obs,
                              on_error=lambda message, exc: translator.error(message, exc.status))
        return Response(obs.stream_wrap(events), mimetype="text/event-stream", headers=STREAM_HEADERS)

    @bp.post("/v1/messages/count_tokens")
    def count_tokens():
        body = read_json_object()
        requested = require_model_name(body, services.settings.default_model)
        observation().note_model(requested)
        resolve_model(requested, services)  # an unknown model is a 404 here too
        return Response(json_bytes({"input_tokens": anthropic.count_tokens(body)}), mimetype="application/json")

    return bp

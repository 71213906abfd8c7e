"""Backend calls of the Ollama generation routes that survive a backend refusing a field the bridge
added on its own (``reasoning_effort``, ``chat_template_kwargs``, ``stream_options``).

When the backend answers 400/422 naming such a field, the call is retried once without it, the
refusal is remembered for this backend (by name) + model (bounded table, per worker) so later calls leave the
field out at once, and ``bridge_upstream_param_dropped_total{param}`` counts every call sent without
it. A client that asked for thinking (``think`` true or a level) on a model whose backend refuses the
thinking fields gets Ollama's own answer instead: 400 ``"<model>" does not support thinking``.
Fields the client sent itself (the ``/v1`` pass-through) are never touched. docs/ollama-fields.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from flask import current_app, has_app_context

from ..errors import ClientRequestError, UpstreamHTTPError
from ..translate.fallback import ADDED_PARAMS, THINKING_PARAMS, DroppedParams, rejected_param
from ..upstream import Deadline
from .common import Services, call_backend

__all__ = ["AddedParams", "added_params", "call_generation", "MAX_REMEMBERED"]

log = logging.getLogger(__name__)

#: (backend, model) pairs remembered per worker; model names come from clients, so bounded.
MAX_REMEMBERED = 256
_dropped = DroppedParams(MAX_REMEMBERED)


def _no_count(param: str) -> None:
    pass


@dataclass(frozen=True)
class AddedParams:
    """The fields the bridge added to one backend request, and whether the client wants thinking."""

    names: tuple[str, ...]
    think_on: bool
    count: Callable[[str], None] = _no_count


def added_params(openai_body: dict, think: object) -> AddedParams:
    """What the bridge added to ``openai_body`` (call in the request context: it picks up the
    worker's metrics counter for use from any greenlet)."""
    count = _no_count
    if has_app_context():
        metrics = current_app.extensions.get("bridge.metrics")
        count = getattr(metrics, "param_dropped", None) or _no_count
    names = tuple(p for p in ADDED_PARAMS if p in openai_body)
    return AddedParams(names, think is not None and think is not False, count)


def call_generation(services: Services, path: str, openai_body: dict, requested: str, *, stream: bool,
                    added: AddedParams, deadline: Deadline | None = None, rid: str | None = None):
    """:func:`call_backend`, leaving out added fields the chosen backend refused for this model
    (remembered per backend name + model) and the thinking fields its THINK_CONTROL does not want."""
    model = openai_body.get("model")
    controls = services.think_controls or {}
    body = openai_body
    tried: set[tuple[str, str]] = set()

    def body_for(backend: str, count: bool = True) -> dict:
        return _without_known(_thinking_for(body, controls.get(backend), added), (backend, model), added, requested,
                              count=count)

    while True:
        try:
            return call_backend(services, path, body, requested, stream=stream, deadline=deadline, rid=rid,
                                body_for=body_for)
        except UpstreamHTTPError as exc:
            backend = exc.backend
            sent = body_for(backend, count=False)  # what that backend was sent
            candidates = [p for p in added.names if p in sent and (backend, p) not in tried]
            rejection = rejected_param(exc.status, exc.message, candidates)
            if rejection is None:
                raise
            param = rejection.param
            tried.add((backend, param))
            other_thinking = [p for p in THINKING_PARAMS if p != param and p in sent]
            if added.think_on and param in THINKING_PARAMS and not rejection.value_only and not other_thinking:
                _dropped.add((backend, model), param)
                raise _no_thinking(requested) from None
            log.info("backend refused a field the bridge added; retrying without it",
                     extra={"param": param, "status": exc.status, "backend": backend})
            if rejection.value_only:  # not remembered: this request alone goes on without it
                _count(added, param)
                body = {k: v for k, v in body.items() if k != param}
            else:  # remembered for this backend + model: body_for leaves it out (and counts it)
                _dropped.add((backend, model), param)


#: The thinking fields each THINK_CONTROL sends (routes translate with "both" when backends differ).
_CONTROL_FIELDS = {"reasoning_effort": frozenset({"reasoning_effort"}),
                   "chat_template_kwargs": frozenset({"chat_template_kwargs"}),
                   "both": THINKING_PARAMS, "off": frozenset()}


def _thinking_for(body: dict, control: str | None, added: AddedParams) -> dict:
    """``body`` without the bridge-added thinking fields this backend's THINK_CONTROL leaves out."""
    if control is None:
        return body
    unwanted = [p for p in THINKING_PARAMS - _CONTROL_FIELDS.get(control, THINKING_PARAMS)
                if p in body and p in added.names]
    if not unwanted:
        return body
    return {k: v for k, v in body.items() if k not in unwanted}


def _without_known(openai_body: dict, key: tuple, added: AddedParams, requested: str, *,
                   count: bool = True) -> dict:
    """The body minus the added fields already known to be refused for this backend + model."""
    known = _dropped.get(key).intersection(added.names)
    if not known:
        return openai_body
    thinking_sent = THINKING_PARAMS.intersection(added.names)
    if added.think_on and thinking_sent and thinking_sent <= known:
        raise _no_thinking(requested)
    known = known.intersection(openai_body)
    if not known:
        return openai_body
    for param in sorted(known) if count else ():
        _count(added, param)
    return {k: v for k, v in openai_body.items() if k not in known}


def _no_thinking(requested: str) -> ClientRequestError:
    # Ollama's own wording and status for think on a model without the thinking capability.
    return ClientRequestError(f'"{requested}" does not support thinking')


def _count(added: AddedParams, param: str) -> None:
    try:
        added.count(param)
    except Exception:  # noqa: BLE001 - metrics must never break a call
        log.exception("metrics: counting a dropped parameter failed")

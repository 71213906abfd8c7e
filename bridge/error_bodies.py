"""The error body each API family's clients parse: one pure function per family, and the choice by path.

* Ollama: ``{"error": "<message>"}``
* OpenAI (``/v1/*``): ``{"error": {"message", "type", "param", "code"}}``
* Anthropic (``/v1/messages``): ``{"type": "error", "error": {"type", "message"}}``

No Flask here: the app's error handlers, the monitoring routes and the streaming modules all call
these with a status and a message.
"""

from __future__ import annotations

from collections.abc import Callable

from .translate.anthropic import error_body as _anthropic_error_body
from .translate.backend_errors import openai_error_body as _openai_error_body

__all__ = ["ErrorBody", "anthropic_error", "for_path", "ollama_error", "ollama_error_for", "openai_error"]

#: ``(status, message) -> body``: the renderer of one API family.
ErrorBody = Callable[[int, str], dict]


def ollama_error(message: str) -> dict:
    """Ollama's error body: ``{"error": message}``."""
    return {"error": message}


def ollama_error_for(status: int, message: str) -> dict:
    """:func:`ollama_error` with the ``(status, message)`` signature of the other families."""
    return ollama_error(message)


def openai_error(status: int, message: str) -> dict:
    """OpenAI's error object, its ``type`` chosen from the status."""
    return _openai_error_body(status, message)


def anthropic_error(status: int, message: str) -> dict:
    """Anthropic's error envelope (what the anthropic SDKs parse), its ``type`` chosen from the status."""
    return _anthropic_error_body(status, message)


def for_path(path: str) -> ErrorBody:
    """The renderer for a request path: ``/v1/messages`` and below -> Anthropic; the rest of ``/v1/*``
    except ``/v1/metrics*`` -> OpenAI; everything else (``/api/*``, monitoring) -> Ollama."""
    if path == "/v1/messages" or path.startswith("/v1/messages/"):
        return anthropic_error
    if path.startswith("/v1/") and not path.startswith("/v1/metrics"):
        return openai_error
    return ollama_error_for

"""bridge: an Ollama-compatible gateway in front of any OpenAI-compatible backend."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["CLOSE_CONNECTION", "create_app", "__version__"]

#: WSGI environ key the app sets when the connection must close after the response (a rejected
#: body that was never read); the worker (bridge.worker) honours it instead of draining the body.
CLOSE_CONNECTION = "bridge.close_connection"


def create_app(settings=None):
    """Build the WSGI app (see :func:`bridge.app.create_app`)."""
    from .app import create_app as _create_app

    return _create_app(settings)

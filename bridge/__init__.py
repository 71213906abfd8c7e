"""bridge: an Ollama-compatible gateway in front of any OpenAI-compatible backend."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["create_app", "__version__"]


def create_app(settings=None):
    """Build the WSGI app (see :func:`bridge.app.create_app`)."""
    from .app import create_app as _create_app

    return _create_app(settings)

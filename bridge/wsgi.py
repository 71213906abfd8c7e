"""WSGI entry point for gunicorn: ``bridge.wsgi:app`` (settings read from the environment)."""

from . import create_app

app = create_app()

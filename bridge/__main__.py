"""Command line: ``python -m bridge check-config`` (release phase) and ``python -m bridge serve``."""

from __future__ import annotations

import json
import os
import sys

from .config import ConfigError, Settings

USAGE = "usage: python -m bridge {check-config|serve}"


def check_config() -> int:
    """Validate the environment; exit 1 with the variable's name on a bad setting."""
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"bridge: configuration error: {exc}", file=sys.stderr)
        return 1
    print("bridge: configuration OK " + json.dumps(settings.describe()))
    return 0


def serve() -> int:
    """Start gunicorn exactly as the Procfile's web line does (config checked first)."""
    if check_config():
        return 1
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.chdir(here)
    os.execvp(sys.executable, [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "bridge.wsgi:app"])
    return 0  # pragma: no cover


def main(argv: list[str]) -> int:
    commands = {"check-config": check_config, "serve": serve}
    if len(argv) != 1 or argv[0] not in commands:
        print(USAGE, file=sys.stderr)
        return 2
    return commands[argv[0]]()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Settings.from_env: defaults, names from the existing proxy, every bad value names its variable."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bridge.config import DEMO_BACKEND_URL, ConfigError, Settings


def test_defaults_use_the_demo_backend_and_ollamas_port():
    s = Settings.from_env({})
    assert s.demo_backend and s.backend_url == DEMO_BACKEND_URL
    assert s.port == 11434 and s.max_retries == 2 and s.max_request_bytes == 32 * 1024 * 1024


def test_base_url_gets_v1_appended_once():
    assert Settings.from_env({"OPENAI_API_BASE_URL": "http://h:4000/"}).backend_url == "http://h:4000/v1"
    assert Settings.from_env({"OPENAI_BASE_URL": "https://api.x/v1"}).backend_url == "https://api.x/v1"
    assert not Settings.from_env({"OPENAI_BASE_URL": "https://api.x/v1"}).demo_backend


def test_port_prefers_port_then_proxy_port():
    assert Settings.from_env({"PORT": "5000", "PROXY_PORT": "6000"}).port == 5000
    assert Settings.from_env({"PROXY_PORT": "6000"}).port == 6000


def test_first_byte_timeout_defaults_on_only_on_a_heroku_dyno():
    assert Settings.from_env({}).first_byte_timeout_s == 0
    assert Settings.from_env({"DYNO": "web.1"}).first_byte_timeout_s == 20
    assert Settings.from_env({"DYNO": "web.1", "FIRST_BYTE_TIMEOUT": "0"}).first_byte_timeout_s == 0
    with pytest.raises(ConfigError, match="FIRST_BYTE_TIMEOUT"):
        Settings.from_env({"FIRST_BYTE_TIMEOUT": "-1"})


def test_max_retries_zero_is_allowed():
    assert Settings.from_env({"MAX_RETRIES": "0"}).max_retries == 0


def test_mapping_file_and_inline_merge(tmp_path):
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"llama3": "meta/llama-3", "a": "x"}))
    s = Settings.from_env({"MODEL_MAPPING_FILE": str(path), "MODEL_MAPPING": '{"a": "y"}'})
    assert dict(s.model_mapping) == {"llama3": "meta/llama-3", "a": "y"}


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"REQUEST_TIMEOUT": "soon"}, "REQUEST_TIMEOUT"),
        ({"CONNECT_TIMEOUT": "-1"}, "CONNECT_TIMEOUT"),
        ({"STREAM_IDLE_TIMEOUT": "nan"}, "STREAM_IDLE_TIMEOUT"),
        ({"MAX_RETRIES": "-1"}, "MAX_RETRIES"),
        ({"MAX_RETRIES": "three"}, "MAX_RETRIES"),
        ({"PORT": "70000"}, "PORT"),
        ({"DEBUG": "maybe"}, "DEBUG"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
        ({"MODEL_MAPPING": "{bad"}, "MODEL_MAPPING"),
        ({"MODEL_MAPPING": '{"model_mappings": {"a": "b"}}'}, "MODEL_MAPPING"),
        ({"MODEL_MAPPING_FILE": "/nonexistent/map.json"}, "MODEL_MAPPING_FILE"),
        ({"OPENAI_API_BASE_URL": "ftp://x"}, "OPENAI_API_BASE_URL"),
        ({"OLLAMA_VERSION": "latest"}, "OLLAMA_VERSION"),
        ({"THINK_CONTROL": "sometimes"}, "THINK_CONTROL"),
        ({"MAX_REQUEST_BYTES": "12"}, "MAX_REQUEST_BYTES"),
        ({"METRICS_WINDOW": "0"}, "METRICS_WINDOW"),
        ({"WEB_CONCURRENCY": "abc"}, "WEB_CONCURRENCY"),
        ({"WORKER_CONNECTIONS": "0"}, "WORKER_CONNECTIONS"),
        ({"GRACEFUL_TIMEOUT": "soon"}, "GRACEFUL_TIMEOUT"),
        ({"KEEPALIVE": "-5"}, "KEEPALIVE"),
    ],
)
def test_bad_values_name_the_variable(env, name):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env(env)


def test_secrets_are_not_in_repr_or_description():
    s = Settings.from_env({"OPENAI_API_KEY": "sk-secret-123", "BRIDGE_API_KEYS": "k1,k2", "METRICS_TOKEN": "mt"})
    assert "sk-secret-123" not in repr(s) and "sk-secret-123" not in json.dumps(s.describe())
    assert "k1" not in repr(s) and "mt" not in json.dumps(s.describe())
    assert s.api_keys == ("k1", "k2")


def test_check_config_command_fails_on_a_bad_setting():
    bad = subprocess.run([sys.executable, "-m", "bridge", "check-config"], env={"MAX_RETRIES": "x", "PATH": ""},
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "MAX_RETRIES" in bad.stderr
    good = subprocess.run([sys.executable, "-m", "bridge", "check-config"], env={"PATH": ""},
                          capture_output=True, text=True)
    assert good.returncode == 0 and "configuration OK" in good.stdout


def test_url_credentials_never_shown_in_errors_or_the_description():
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"PUSHGATEWAY_URL": "https://user:s3cret@gw:notaport"})
    assert "PUSHGATEWAY_URL" in str(info.value) and "s3cret" not in str(info.value)
    settings = Settings.from_env({"OPENAI_API_BASE_URL": "https://user:s3cret@backend.example/v1"})
    assert "s3cret" not in json.dumps(settings.describe())

"""BACKENDS_FILE parsing (bridge/backends.py) and its reading in Settings.from_env."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bridge.backends import BackendsFileError, parse_backends
from bridge.config import ConfigError, Settings, _check_http_url

FULL = """
# two GPUs and a hosted fallback
[[backend]]
name = "gpu-a"
base_url = "http://10.0.0.5:8000"
api_key_env = "GPU_A_KEY"
priority = 0
weight = 2
request_timeout = 120
connect_timeout = 2
max_retries = 1
think_control = "chat_template_kwargs"

[[backend]]
name = "hosted.1"
base_url = "https://api.example.com/v1/"
models = ["m1", "m2", "m1"]
priority = 10
"""


def parse(text: str):
    return parse_backends(text, check_url=_check_http_url)


def test_a_complete_file_parses_with_defaults_and_v1_appended():
    a, b = parse(FULL)
    assert (a.name, a.base_url, a.api_key_env, a.priority, a.weight) == ("gpu-a", "http://10.0.0.5:8000/v1",
                                                                          "GPU_A_KEY", 0, 2.0)
    assert (a.request_timeout_s, a.connect_timeout_s, a.max_retries, a.think_control) == (120.0, 2.0, 1,
                                                                                          "chat_template_kwargs")
    assert a.models is None and a.api_key is None
    assert (b.base_url, b.models, b.priority, b.weight, b.max_retries) == ("https://api.example.com/v1",
                                                                           ("m1", "m2"), 10, 1.0, None)


@pytest.mark.parametrize("table, message", [
    ('name = "a b"\nbase_url = "http://h"', "name is required and must match"),
    ('base_url = "http://h"', "name is required"),
    ('name = "' + "x" * 65 + '"\nbase_url = "http://h"', "must match"),
    ('name = "a"', "backend 'a': base_url is required"),
    ('name = "a"\nbase_url = "ftp://h"', "backend 'a': base_url must start with http"),
    ('name = "a"\nbase_url = "http://h:notaport"', "backend 'a': base_url is not a valid URL"),
    ('name = "a"\nbase_url = "http://h"\nwieght = 2', "backend 'a': unknown key(s) wieght"),
    ('name = "a"\nbase_url = "http://h"\napi_key = "sk-secret"', "unknown key(s) api_key"),
    ('name = "a"\nbase_url = "http://h"\nweight = 0', "backend 'a': weight must be greater than 0"),
    ('name = "a"\nbase_url = "http://h"\nweight = -1', "weight must be greater than 0"),
    ('name = "a"\nbase_url = "http://h"\npriority = 1.5', "backend 'a': priority must be an integer"),
    ('name = "a"\nbase_url = "http://h"\nmax_retries = 11', "backend 'a': max_retries must be between 0 and 10"),
    ('name = "a"\nbase_url = "http://h"\nrequest_timeout = 0', "request_timeout must be at least 0.1"),
    ('name = "a"\nbase_url = "http://h"\nmodels = []', "backend 'a': models must be a non-empty list"),
    ('name = "a"\nbase_url = "http://h"\nmodels = "m1"', "models must be a non-empty list"),
    ('name = "a"\nbase_url = "http://h"\nthink_control = "yes"', "backend 'a': think_control must be one of"),
    ('name = "a"\nbase_url = "http://h"\napi_key_env = "not a var"', "api_key_env must be the name"),
])
def test_every_bad_entry_names_the_backend_and_the_key(table, message):
    with pytest.raises(BackendsFileError) as err:
        parse("[[backend]]\n" + table + "\n")
    assert message in str(err.value)


def test_names_are_unique_and_the_file_is_only_backend_tables():
    with pytest.raises(BackendsFileError, match="'a': name is used twice"):
        parse('[[backend]]\nname="a"\nbase_url="http://h"\n[[backend]]\nname="a"\nbase_url="http://g"\n')
    with pytest.raises(BackendsFileError, match="unknown top-level key"):
        parse('timeout = 3\n[[backend]]\nname="a"\nbase_url="http://h"\n')
    with pytest.raises(BackendsFileError, match="no \\[\\[backend\\]\\] table"):
        parse("# nothing\n")
    with pytest.raises(BackendsFileError, match="not valid TOML"):
        parse("[[backend]\n")


def test_settings_read_the_file_and_resolve_keys_from_the_environment(tmp_path):
    path = tmp_path / "backends.toml"
    path.write_text(FULL)
    s = Settings.from_env({"BACKENDS_FILE": str(path), "GPU_A_KEY": "sk-a"})
    assert [b.name for b in s.backend_list()] == ["gpu-a", "hosted.1"]
    assert s.backend_list()[0].api_key == "sk-a" and not s.demo_backend
    assert "sk-a" not in repr(s) and "sk-a" not in str(s.describe())
    with pytest.raises(ConfigError, match="backend 'gpu-a': api_key_env names GPU_A_KEY, which is not set"):
        Settings.from_env({"BACKENDS_FILE": str(path)})
    with pytest.raises(ConfigError, match="BACKENDS_FILE and OPENAI_API_BASE_URL"):
        Settings.from_env({"BACKENDS_FILE": str(path), "GPU_A_KEY": "k", "OPENAI_API_BASE_URL": "http://h"})
    with pytest.raises(ConfigError, match="BACKENDS_FILE: cannot read"):
        Settings.from_env({"BACKENDS_FILE": str(tmp_path / "missing.toml")})


def test_without_the_file_one_default_backend_from_the_old_variables():
    s = Settings.from_env({"OPENAI_API_BASE_URL": "http://h:4000", "OPENAI_API_KEY": "sk-x", "MAX_RETRIES": "4"})
    (only,) = s.backend_list()
    assert (only.name, only.base_url, only.api_key, only.models, only.max_retries) == (
        "default", "http://h:4000/v1", "sk-x", None, None)
    assert Settings().backend_list()[0].name == "default"  # settings built directly, as tests do


def test_breaker_settings_are_checked():
    s = Settings.from_env({"BACKEND_FAILURE_THRESHOLD": "5", "BACKEND_COOLDOWN": "2.5"})
    assert (s.backend_failure_threshold, s.backend_cooldown_s) == (5, 2.5)
    assert (Settings.from_env({}).backend_failure_threshold, Settings.from_env({}).backend_cooldown_s) == (3, 30.0)
    with pytest.raises(ConfigError, match="BACKEND_FAILURE_THRESHOLD must be at least 1"):
        Settings.from_env({"BACKEND_FAILURE_THRESHOLD": "0"})
    with pytest.raises(ConfigError, match="BACKEND_COOLDOWN"):
        Settings.from_env({"BACKEND_COOLDOWN": "soon"})


def test_named_inbound_keys_mix_with_bare_ones_and_never_show_the_key():
    s = Settings.from_env({"BRIDGE_API_KEYS": "alice:sk-1, sk-2 ,ci.bot:sk-3"})
    assert s.api_keys == ("sk-1", "sk-2", "sk-3")
    assert s.key_names() == ("alice", "default", "ci.bot")
    assert Settings(api_keys=("k",)).key_names() == ("default",)
    for bad, message in [("bad name:sk-9", "entry #1 has a name that does not match"),
                         ("a:", "entry #1 (a) has an empty key"),
                         ("a:sk-9,b:sk-9", "entry #2 (b) repeats a key")]:
        with pytest.raises(ConfigError, match="BRIDGE_API_KEYS") as err:
            Settings.from_env({"BRIDGE_API_KEYS": bad})
        assert message in str(err.value) and "sk-9" not in str(err.value)


def test_check_config_names_the_backend_and_the_key(tmp_path):
    path = tmp_path / "backends.toml"
    path.write_text('[[backend]]\nname = "gpu-b"\nbase_url = "http://h"\npriorty = 1\n')
    result = subprocess.run([sys.executable, "-m", "bridge", "check-config"], capture_output=True, text=True,
                            env={"BACKENDS_FILE": str(path), "PATH": "/usr/bin:/bin"}, timeout=60)
    assert result.returncode == 1
    assert "backend 'gpu-b'" in result.stderr and "priorty" in result.stderr

"""config_values: each setting read from a mapping, typed and checked, every error naming its variable."""

from __future__ import annotations

import math

import pytest

from bridge import config
from bridge.config_values import (
    ConfigError,
    Env,
    access_log,
    backends_file,
    check_http_url,
    inbound_keys,
    instance_name,
    metrics_dir,
    model_mapping,
    normalise_base_url,
    ollama_version,
    read_text_file,
    redact_url,
    url_setting,
)


def test_config_still_exports_what_moved_here():
    assert config.ConfigError is ConfigError and config._check_http_url is check_http_url
    assert {"ConfigError", "_check_http_url"} <= set(config.__all__)


# --- Env ---------------------------------------------------------------------------------------


def test_str_strips_and_treats_empty_as_unset():
    env = Env({"A": "  x ", "B": "   "})
    assert env.str("A") == "x" and env.str("B") is None and env.str("C") is None


def test_numbers_default_parse_and_stay_in_bounds():
    env = Env({"I": " 7 ", "F": "0.5", "BIG": "11", "NEG": "-0.1"})
    assert env.int("I", 1) == 7 and env.int("UNSET", 3) == 3 and env.float("F", 1.0) == 0.5
    assert env.int("BIG", 0, lo=0, hi=11) == 11
    with pytest.raises(ConfigError, match="BIG must be at most 10, got 11"):
        env.int("BIG", 0, hi=10)
    with pytest.raises(ConfigError, match="NEG must be at least 0.0"):
        env.float("NEG", 1.0, lo=0.0)


@pytest.mark.parametrize("raw", ["nan", "inf", "-inf", "soon"])
def test_floats_must_be_finite_numbers(raw):
    with pytest.raises(ConfigError, match="^X must be a"):
        Env({"X": raw}).float("X", 1.0)


def test_ints_reject_decimals():
    with pytest.raises(ConfigError, match="X must be an integer, got '1.5'"):
        Env({"X": "1.5"}).int("X", 1)


@pytest.mark.parametrize(("raw", "value"), [("1", True), ("YES", True), (" on ", True), ("true", True),
                                            ("0", False), ("no", False), ("off", False), ("", False)])
def test_booleans(raw, value):
    assert Env({"B": raw}).bool("B", not value) is value


def test_boolean_unset_is_the_default_and_nonsense_is_an_error():
    assert Env({}).bool("B", True) is True
    with pytest.raises(ConfigError, match="B must be true or false"):
        Env({"B": "maybe"}).bool("B", True)


def test_choice_normalises_case_and_lists_the_allowed_values():
    env = Env({"L": "debug", "F": "JSON", "X": "xml"})
    assert env.choice("L", "INFO", ("DEBUG", "INFO"), upper=True) == "DEBUG"
    assert env.choice("F", "text", ("json", "text")) == "json"
    assert env.choice("UNSET", "text", ("json", "text")) == "text"
    with pytest.raises(ConfigError, match="X must be one of json, text, got 'xml'"):
        env.choice("X", "json", ("json", "text"))


def test_list_splits_on_commas_dropping_blanks():
    assert Env({"L": " a, b ,,c , "}).list("L") == ("a", "b", "c") and Env({}).list("L") == ()


# --- URLs --------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["http://h", "https://h:8443/v1", "http://user:pw@h:1/x", "http://[::1]:8000"])
def test_good_urls_pass_unchanged(url):
    assert check_http_url(url, "U") == url


@pytest.mark.parametrize(("url", "why"), [("ftp://h", "must start with http"), ("http://", "has no host"),
                                          ("http://h:0", "has port 0"), ("http://h:99999", "not a valid URL"),
                                          ("http://u:s3cret@h:port", "not a valid URL")])
def test_bad_urls_name_the_setting_and_hide_credentials(url, why):
    with pytest.raises(ConfigError, match=why) as info:
        check_http_url(url, "SOME_URL")
    assert str(info.value).startswith("SOME_URL") and "s3cret" not in str(info.value)


def test_redact_url_hides_user_and_password():
    assert redact_url("https://user:pw@h/v1") == "https://***@h/v1" and redact_url("http://h/x") == "http://h/x"


def test_base_url_gets_v1_once_and_optional_urls_lose_trailing_slashes():
    assert normalise_base_url(" http://h:4000// ") == "http://h:4000/v1"
    assert normalise_base_url("http://h/v1/") == "http://h/v1"
    assert url_setting(Env({"P": "http://gw:9091/"}), "P") == "http://gw:9091" and url_setting(Env({}), "P") is None


# --- files -------------------------------------------------------------------------------------


def test_read_text_file_names_the_setting(tmp_path):
    good = tmp_path / "a.txt"
    good.write_text("héllo", encoding="utf-8")
    assert read_text_file(str(good), "F") == "héllo"
    with pytest.raises(ConfigError, match="^F: cannot read"):
        read_text_file(str(tmp_path / "missing"), "F")
    bad = tmp_path / "b.bin"
    bad.write_bytes(b"ok\xff")
    with pytest.raises(ConfigError, match=r"^F: .* is not UTF-8 text \(byte 2\)"):
        read_text_file(str(bad), "F")


def test_backends_file_resolves_each_key_from_its_variable(tmp_path):
    path = tmp_path / "b.toml"
    path.write_text('[[backend]]\nname = "a"\nbase_url = "http://a"\napi_key_env = "A_KEY"\n')
    assert backends_file(Env({})) == ()
    (backend,) = backends_file(Env({"BACKENDS_FILE": str(path), "A_KEY": "k"}))
    assert backend.api_key == "k" and backend.base_url == "http://a/v1"
    with pytest.raises(ConfigError, match="A_KEY, which is not set"):
        backends_file(Env({"BACKENDS_FILE": str(path)}))


def test_model_mapping_inline_wins_over_the_file(tmp_path):
    path = tmp_path / "m.json"
    path.write_text('{"a": "x", "b": "y"}')
    assert model_mapping(Env({"MODEL_MAPPING_FILE": str(path), "MODEL_MAPPING": '{"a": "z"}'})) == {"a": "z", "b": "y"}
    assert model_mapping(Env({})) == {}
    with pytest.raises(ConfigError, match="^MODEL_MAPPING: "):
        model_mapping(Env({"MODEL_MAPPING": "[1]"}))


def test_metrics_dir_must_be_a_creatable_or_writable_directory(tmp_path):
    assert metrics_dir(Env({})) is None
    fresh = str(tmp_path / "new" / "sub")
    assert metrics_dir(Env({"PROMETHEUS_MULTIPROC_DIR": fresh})) == fresh
    assert not (tmp_path / "new").exists()  # checked, not created
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="is not a directory"):
        metrics_dir(Env({"PROMETHEUS_MULTIPROC_DIR": str(blocker)}))


def test_access_log_is_off_unless_set():
    assert access_log(Env({})) is None and access_log(Env({"ACCESS_LOG": " "})) is None
    assert access_log(Env({"ACCESS_LOG": " - "})) == "-"


# --- identities --------------------------------------------------------------------------------


def test_inbound_keys_bare_or_named():
    keys, names = inbound_keys(Env({"BRIDGE_API_KEYS": "k1, team-a:k2 ,b.2:k:3"}), default_name="dflt")
    assert keys == ("k1", "k2", "k:3") and names == ("dflt", "team-a", "b.2")
    assert inbound_keys(Env({}), default_name="d") == ((), ())


@pytest.mark.parametrize(("raw", "why"), [("bad name:k", "entry #1 has a name"),
                                          ("a:k,b: ", r"entry #2 \(b\) has an empty key"),
                                          ("secret1,x:secret1", r"entry #2 \(x\) repeats a key")])
def test_bad_inbound_keys_never_show_a_key(raw, why):
    with pytest.raises(ConfigError, match=why) as info:
        inbound_keys(Env({"BRIDGE_API_KEYS": raw}), default_name="d")
    assert "secret1" not in str(info.value) and str(info.value).startswith("BRIDGE_API_KEYS")


def test_instance_name_prefers_the_setting_then_the_dyno():
    assert instance_name(Env({"INSTANCE_NAME": "a", "DYNO": "web.1"})) == "a"
    assert instance_name(Env({"DYNO": "web.1"})) == "web.1"
    assert instance_name(Env({}))  # the host name
    with pytest.raises(ConfigError, match="INSTANCE_NAME"):
        instance_name(Env({"INSTANCE_NAME": "x" * 129}))


def test_ollama_version_is_a_dotted_number():
    assert ollama_version("0.12.6") == "0.12.6"
    for bad in ("latest", "1", "1.x", "1..2"):
        with pytest.raises(ConfigError, match="OLLAMA_VERSION"):
            ollama_version(bad)


def test_bounds_hold_for_floats_at_the_edge():
    assert Env({"F": "0.1"}).float("F", 1.0, lo=0.1) == pytest.approx(0.1)
    assert math.isclose(Env({"F": "1e3"}).float("F", 1.0), 1000.0)

"""ModelMap: aliases, ":latest", default model, labels, pass-through mapping."""

from __future__ import annotations

import pytest

from bridge.errors import ClientRequestError
from bridge.modelmap import MAX_KNOWN_LABELS, ModelMap


@pytest.fixture
def mm() -> ModelMap:
    return ModelMap({"coder": "Qwen/Qwen2.5-Coder-7B", "fast:latest": "gpt-4o-mini"}, default_model="m1")


# --- from_json -------------------------------------------------------------------------------


def test_from_json_flat_object():
    mm = ModelMap.from_json('{"llama3": "meta-llama/Llama-3-8B"}', default_model="x")
    assert mm.to_backend("llama3") == "meta-llama/Llama-3-8B"
    assert mm.default_model == "x"
    assert mm.mapping == {"llama3": "meta-llama/Llama-3-8B"}


def test_from_json_empty_object_is_fine():
    assert ModelMap.from_json("{}").mapping == {}


@pytest.mark.parametrize(
    "text, fragment",
    [
        # The peer's documented-but-broken nested format: objects are facts now, "target" is no fact.
        ('{"a": {"target": "b"}}', "unknown key 'target'"),
        ('{"a": 1}', "'a'"),
        ('{"a": null}', "string"),
        ('{"a": ["b"]}', "string"),
        ('["a", "b"]', "must be a JSON object"),
        ('"a"', "must be a JSON object"),
        ("{not json", "not valid JSON"),
        ('{"": "b"}', "empty"),
        ('{"a": ""}', "empty"),
    ],
)
def test_from_json_rejects_anything_but_names_and_fact_objects(text, fragment):
    with pytest.raises(ValueError) as info:
        ModelMap.from_json(text)
    assert fragment in str(info.value)


def test_mapping_is_copied_not_shared():
    source = {"a": "b"}
    mm = ModelMap(source)
    source["a"] = "changed"
    assert mm.to_backend("a") == "b"


# --- to_backend ------------------------------------------------------------------------------


def test_alias_maps_to_backend(mm):
    assert mm.to_backend("coder") == "Qwen/Qwen2.5-Coder-7B"


def test_unmapped_name_passes_through(mm):
    assert mm.to_backend("gpt-4o") == "gpt-4o"


def test_latest_tries_exact_alias_first(mm):
    assert mm.to_backend("fast:latest") == "gpt-4o-mini"


def test_latest_falls_back_to_bare_alias(mm):
    assert mm.to_backend("coder:latest") == "Qwen/Qwen2.5-Coder-7B"


def test_latest_is_stripped_for_unmapped_names(mm):
    # Case 40: the backend only knows "m1" but the client asks for "m1:latest".
    assert mm.to_backend("m1:latest") == "m1"


def test_other_tags_are_kept(mm):
    assert mm.to_backend("m1:7b") == "m1:7b"


def test_bare_latest_is_not_an_empty_name():
    assert ModelMap().to_backend(":latest") == ":latest"


def test_latest_kept_when_backend_lists_it():
    mm = ModelMap()
    mm.set_known_labels(["llama3.2:latest"])  # e.g. Ollama's own /v1 as the backend
    assert mm.to_backend("llama3.2:latest") == "llama3.2:latest"


@pytest.mark.parametrize("requested", [None, "", "   "])
def test_missing_model_uses_default(mm, requested):
    assert mm.to_backend(requested) == "m1"


def test_default_model_may_be_an_alias():
    assert ModelMap({"coder": "backend-coder"}, default_model="coder").to_backend("") == "backend-coder"


@pytest.mark.parametrize("requested", [None, ""])
def test_missing_model_without_default_is_400(requested):
    with pytest.raises(ClientRequestError) as info:
        ModelMap().to_backend(requested)
    assert info.value.message == "model is required"
    assert info.value.status == 400


@pytest.mark.parametrize("requested", [1, ["m"], {"m": 1}, True])
def test_non_string_model_is_400(requested):
    with pytest.raises(ClientRequestError):
        ModelMap().to_backend(requested)


# --- is_known --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "requested, known",
    [
        ("m1", True),
        ("m1:latest", True),
        ("coder", True),
        ("coder:latest", True),
        ("nope", False),
        ("nope:latest", False),
        ("fast:latest", False),  # alias target not among the backend ids
        ("", True),  # default model m1
        (None, True),
    ],
)
def test_is_known(mm, requested, known):
    assert mm.is_known(requested, ["m1", "Qwen/Qwen2.5-Coder-7B"]) is known


def test_is_known_false_when_no_model_and_no_default():
    assert ModelMap().is_known("", ["m1"]) is False


def test_is_known_accepts_backend_id_spelled_with_latest():
    assert ModelMap().is_known("llama3.2:latest", {"llama3.2:latest"}) is True


# --- ollama_names ----------------------------------------------------------------------------


def test_ollama_names_lists_live_aliases_and_every_backend_id(mm):
    pairs = mm.ollama_names(["m1", "Qwen/Qwen2.5-Coder-7B"])
    assert pairs == [
        ("coder", "Qwen/Qwen2.5-Coder-7B"),
        ("m1", "m1"),
        ("Qwen/Qwen2.5-Coder-7B", "Qwen/Qwen2.5-Coder-7B"),
    ]


def test_ollama_names_hides_aliases_whose_target_is_absent(mm):
    assert ("fast:latest", "gpt-4o-mini") not in mm.ollama_names(["m1"])


def test_ollama_names_spelled_as_backend_spells_them():
    names = [name for name, _ in ModelMap().ollama_names(["a", "b:latest"])]
    assert names == ["a", "b:latest"]


def test_alias_shadowing_a_backend_id_is_listed_once():
    mm = ModelMap({"gpt-4": "gpt-4o"})
    assert mm.ollama_names(["gpt-4", "gpt-4o"]) == [("gpt-4", "gpt-4o"), ("gpt-4o", "gpt-4o")]


def test_several_aliases_for_one_target_each_keep_their_name():
    mm = ModelMap({"a": "t", "b": "t"})
    assert mm.ollama_names(["t"]) == [("a", "t"), ("b", "t"), ("t", "t")]


def test_ollama_names_deduplicates_backend_ids():
    assert ModelMap().ollama_names(["a", "a"]) == [("a", "a")]


# --- labels ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "requested, label",
    [
        ("coder", "coder"),
        ("Qwen/Qwen2.5-Coder-7B", "Qwen/Qwen2.5-Coder-7B"),
        ("m1", "m1"),  # the default model is configured
        ("m1:latest", "m1"),
        ("coder:latest", "coder"),
        ("fast:latest", "fast:latest"),
        ("random-user-string", "other"),
        ("", "m1"),
        (None, "m1"),
        (42, "other"),
    ],
)
def test_label_configured_names(mm, requested, label):
    assert mm.label(requested) == label


def test_label_missing_model_without_default_is_other():
    assert ModelMap().label("") == "other"


def test_label_learned_backend_ids():
    mm = ModelMap()
    assert mm.label("gpt-4o") == "other"
    mm.set_known_labels(["gpt-4o"])
    assert mm.label("gpt-4o") == "gpt-4o"
    assert mm.label("gpt-4o:latest") == "gpt-4o"


def test_known_labels_replace_previous_set():
    mm = ModelMap()
    mm.set_known_labels(["a"])
    mm.set_known_labels(["b"])
    assert mm.label("a") == "other"
    assert mm.label("b") == "b"


def test_known_labels_capped():
    mm = ModelMap()
    names = [f"model-{i}" for i in range(500)]
    mm.set_known_labels(names)
    labels = {mm.label(n) for n in names}
    assert len(labels - {"other"}) == MAX_KNOWN_LABELS == 50
    assert mm.label("model-0") == "model-0"
    assert mm.label("model-499") == "other"


def test_known_labels_ignore_junk_and_duplicates():
    mm = ModelMap()
    mm.set_known_labels(["a"] * 100 + ["", None, 3, "b"])  # type: ignore[list-item]
    assert mm.label("a") == "a"
    assert mm.label("b") == "b"


def test_label_set_is_bounded_for_arbitrary_input(mm):
    seen = {mm.label(f"user-{i}") for i in range(1000)}
    assert seen == {"other"}


# --- pass-through ----------------------------------------------------------------------------


def test_passthrough_maps_model_and_copies(mm):
    body = {"model": "coder", "messages": [], "stream": True}
    out = mm.to_backend_passthrough(body)
    assert out == {"model": "Qwen/Qwen2.5-Coder-7B", "messages": [], "stream": True}
    assert body["model"] == "coder"


def test_passthrough_strips_latest(mm):
    assert mm.to_backend_passthrough({"model": "x:latest"})["model"] == "x"


def test_passthrough_without_model_is_unchanged(mm):
    body = {"input": "hi"}
    out = mm.to_backend_passthrough(body)
    assert out == body and out is not body


def test_passthrough_empty_model_gets_default(mm):
    assert mm.to_backend_passthrough({"model": ""})["model"] == "m1"


def test_passthrough_empty_model_without_default_left_to_backend():
    assert ModelMap().to_backend_passthrough({"model": ""}) == {"model": ""}


def test_passthrough_non_string_model_left_to_backend(mm):
    assert mm.to_backend_passthrough({"model": 5}) == {"model": 5}


# --- per-model facts (objects in the mapping file) ------------------------------------------------


def test_object_entries_map_and_carry_facts():
    mm = ModelMap.from_json(
        '{"llama3": {"model": "meta-llama/Llama-3-8B", "context_length": 8192, "parameter_size": "8B",'
        ' "quantization_level": "Q4_K_M", "family": "llama", "capabilities": ["completion", "tools", "vision"],'
        ' "size": 4920000000}, "flat": "gpt-4o"}')
    assert mm.to_backend("llama3") == "meta-llama/Llama-3-8B"
    assert mm.to_backend("llama3:latest") == "meta-llama/Llama-3-8B"
    assert mm.to_backend("flat") == "gpt-4o"
    assert mm.mapping == {"llama3": "meta-llama/Llama-3-8B", "flat": "gpt-4o"}
    facts = mm.facts("llama3:latest", "meta-llama/Llama-3-8B")
    assert facts == {"context_length": 8192, "parameter_size": "8B", "quantization_level": "Q4_K_M",
                     "family": "llama", "capabilities": ["completion", "tools", "vision"], "size": 4920000000}
    assert mm.facts("flat", "gpt-4o") == {}
    assert mm.facts("unknown", "unknown") == {}


def test_object_without_model_describes_the_backend_id_itself():
    mm = ModelMap.from_json('{"qwen3:8b": {"context_length": 40960}, "fast": "qwen3:8b"}')
    assert mm.to_backend("qwen3:8b") == "qwen3:8b"
    # An alias of a described model inherits the description; its own entry would win.
    assert mm.facts("fast", "qwen3:8b") == {"context_length": 40960}
    assert mm.facts("qwen3:8b", "qwen3:8b") == {"context_length": 40960}


def test_alias_facts_win_over_the_target_description():
    mm = ModelMap({"big": {"context_length": 131072}, "small": {"model": "big", "context_length": 8192}})
    assert mm.facts("small", "big") == {"context_length": 8192}


def test_entries_round_trip_through_settings_form():
    text = '{"a": "b", "c": {"model": "d", "size": 0}, "e": {"capabilities": ["embedding"]}}'
    entries = ModelMap.from_json(text).entries
    assert entries == {"a": "b", "c": {"model": "d", "size": 0}, "e": {"model": "e", "capabilities": ["embedding"]}}
    again = ModelMap(entries)
    assert again.entries == entries and again.mapping == {"a": "b", "c": "d", "e": "e"}


def test_facts_are_copies():
    mm = ModelMap({"a": {"capabilities": ["completion"]}})
    mm.facts("a", "a")["capabilities"].append("tools")
    assert mm.facts("a", "a") == {"capabilities": ["completion"]}


@pytest.mark.parametrize(
    "text, fragment",
    [
        ('{"a": {"model": ""}}', '"model" must be a non-empty'),
        ('{"a": {"model": 5}}', '"model" must be a non-empty'),
        ('{"a": {"context_length": "8k"}}', "'context_length' must be a positive whole number"),
        ('{"a": {"context_length": 0}}', "positive whole number"),
        ('{"a": {"context_length": 1.5}}', "positive whole number"),
        ('{"a": {"context_length": true}}', "positive whole number"),
        ('{"a": {"size": -1}}', "whole number of bytes"),
        ('{"a": {"parameter_size": 7}}', "'parameter_size' must be a string"),
        ('{"a": {"capabilities": "tools"}}', "list of strings"),
        ('{"a": {"capabilities": ["completion", "teleport"]}}', "unknown capability 'teleport'"),
        ('{"a": {"ctx": 8192}}', "unknown key 'ctx'"),
        ('{"a": {"family": "' + "x" * 300 + '"}}', "at most 256"),
    ],
)
def test_fact_objects_are_validated(text, fragment):
    with pytest.raises(ValueError) as info:
        ModelMap.from_json(text)
    assert fragment in str(info.value) and "'a'" in str(info.value)


def test_integral_float_facts_are_accepted():
    mm = ModelMap.from_json('{"a": {"context_length": 8192.0, "size": 0.0}}')
    assert mm.facts("a", "a") == {"context_length": 8192, "size": 0}


def test_fact_objects_travel_through_settings_to_the_app_modelmap(tmp_path):
    # app.py builds ModelMap(dict(settings.model_mapping)): the facts must survive that path.
    from bridge.config import ConfigError, Settings

    path = tmp_path / "map.json"
    path.write_text('{"llama3": {"model": "meta/llama-3", "context_length": 8192}, "a": "x"}')
    settings = Settings.from_env({"MODEL_MAPPING_FILE": str(path), "MODEL_MAPPING": '{"a": "y"}'})
    mm = ModelMap(dict(settings.model_mapping))
    assert mm.mapping == {"llama3": "meta/llama-3", "a": "y"}
    assert mm.facts("llama3", "meta/llama-3") == {"context_length": 8192}
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"MODEL_MAPPING": '{"a": {"context_length": "big"}}'})
    assert "MODEL_MAPPING" in str(info.value) and "context_length" in str(info.value)

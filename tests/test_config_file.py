"""Run settings from a TOML or YAML file: context fields and backend options, checked early."""

from __future__ import annotations

import sys

import pytest

from collabvr.config_file import load_config
from collabvr.context import Context
from collabvr.errors import BadInput

TOML = '''
vgm = "diffusers:Wan-AI/Wan2.2-I2V-A14B-Diffusers"
vlm = "transformers:Qwen/Qwen2.5-VL-7B-Instruct"
max_steps = 4
fps = 16

[vgm_options]
offload = "model"
num_inference_steps = 20

[vlm_options]
constrained = true
'''


def test_a_toml_file_gives_context_fields_and_backend_options(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(TOML)
    config = load_config(path)
    assert config["vgm"].startswith("diffusers:") and config["max_steps"] == 4
    assert config["vgm_options"] == {"offload": "model", "num_inference_steps": 20}
    assert config["vlm_options"] == {"constrained": True}
    assert Context(**config).fps == 16


def test_a_yaml_file_reads_the_same_and_option_tables_are_always_there(tmp_path):
    pytest.importorskip("yaml")
    path = tmp_path / "run.yaml"
    path.write_text("vgm: diffusers:/models/wan\nseed: 7\nvgm_options:\n  vae_tiling: true\n")
    assert load_config(path) == {"vgm": "diffusers:/models/wan", "seed": 7, "vgm_options": {"vae_tiling": True},
                                 "vlm_options": {}}
    empty = tmp_path / "empty.yml"
    empty.write_text("")
    assert load_config(empty) == {"vgm_options": {}, "vlm_options": {}}


@pytest.mark.parametrize("name, text, needle", [
    ("a.toml", "max_stepz = 3\n", "unknown key(s) max_stepz; accepted: vlm, vgm"),
    ("a.toml", "max_steps = 0\n", "max_steps must be a whole number >= 1"),
    ("a.toml", "vgm_options = 3\n", "vgm_options must be a table of options"),
    ("a.toml", "max_steps = \n", "is not valid TOML"),
    ("a.yaml", "- a\n- b\n", "must hold a table of settings"),
    ("a.yaml", "vgm: [unclosed\n", "is not valid YAML"),
    ("a.json", "{}", "must end in .toml, .yaml or .yml"),
])
def test_a_bad_file_is_one_clear_bad_input(tmp_path, name, text, needle):
    if name.endswith(".yaml"):
        pytest.importorskip("yaml")
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(BadInput) as info:
        load_config(path)
    assert needle in str(info.value) and str(path) in str(info.value)


def test_a_missing_file_and_yaml_without_pyyaml_name_the_fix(tmp_path, monkeypatch):
    with pytest.raises(BadInput, match="cannot read config file"):
        load_config(tmp_path / "missing.toml")
    path = tmp_path / "run.yaml"
    path.write_text("seed: 1\n")
    monkeypatch.setitem(sys.modules, "yaml", None)  # as if pyyaml were not installed
    with pytest.raises(BadInput, match="pip install pyyaml"):
        load_config(path)

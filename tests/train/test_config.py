"""Typed config: YAML + dotted overrides, unknown keys and bad choices refused."""

import pytest

from train.config import ConfigError, GroupConfig, TrainConfig, load_config


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: {framework: lite}\noptim: {micro_batch: 1, groups: [{name: all, include: ['*'], lr: 2}]}\n")
    cfg = load_config(path, ["optim.steps=7", "data.seed=3", "output_dir=/x"])
    assert cfg.model.framework == "lite" and cfg.optim.steps == 7 and cfg.data.seed == 3 and cfg.output_dir == "/x"
    assert cfg.optim.groups == [GroupConfig("all", ["*"], 2.0, 0.0)] and cfg.optim.micro_batch == 1
    assert cfg.optim.global_batch == 256 and cfg.optim.warmup_ratio == 0.03


def test_unknown_key_and_bad_choice_are_errors():
    with pytest.raises(ValueError, match=r"optim: unknown keys \['stepz'\]"):
        load_config(None, ["optim.stepz=3"])
    with pytest.raises(ValueError, match=r"model.framework: 'vit' is not one of \['pixelrefer', 'lite'\]"):
        load_config(None, ["model.framework=vit"])
    with pytest.raises(ValueError, match="not key=value"):
        load_config(None, ["optim.steps"])


def test_accumulation_and_stage_folders(tmp_path):
    cfg = TrainConfig()
    assert cfg.accumulation(8) == 16  # the published recipe: 256 = 2 x 8 GPUs x 16
    with pytest.raises(ValueError, match="not a multiple"):
        cfg.accumulation(3)
    with pytest.raises(ValueError, match="own output_dir"):
        TrainConfig(output_dir=str(tmp_path), init_from=str(tmp_path / "step_000010"))
    with pytest.raises(ValueError, match="own output_dir"):
        TrainConfig(output_dir=str(tmp_path), init_from=str(tmp_path))


def test_an_override_of_the_wrong_type_names_the_key():
    with pytest.raises(ConfigError, match=r"^optim.steps: expected an integer, got 'abc'$"):
        load_config(None, ["optim.steps=abc"])
    with pytest.raises(ConfigError, match=r"^optim.steps: expected an integer, got True$"):
        load_config(None, ["optim.steps=true"])
    assert load_config(None, ["optim.warmup_ratio=0"]).optim.warmup_ratio == 0.0  # an int is a fine float

"""Dataclass configs: to/from plain dicts and JSON, clear errors, the tiny() convention."""

import dataclasses
import enum
import json
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import pytest
import torch

from CardiacMotionAtlasLib.errors import InputFileError
from CardiacMotionAtlasLib.training import (
    ConfigError,
    config_from_dict,
    config_to_dict,
    load_checkpoint,
    load_config_json,
    save_checkpoint,
    save_config_json,
    tiny_config,
)


class Fit(enum.Enum):
    ALL_FRAMES = "all"
    ED_ES = "ed_es"


@dataclasses.dataclass
class DecoderConfig:
    widths: Tuple[int, ...] = (64, 64)
    activation: str = "relu"


@dataclasses.dataclass
class TrainerConfig:
    lr: float = 1e-3
    steps: int = 1000
    use_amp: bool = False
    fit: Fit = Fit.ALL_FRAMES
    decoder: DecoderConfig = dataclasses.field(default_factory=DecoderConfig)
    output: Optional[Path] = None
    scale: Tuple[float, float] = (1.0, 2.0)

    @classmethod
    def tiny(cls):
        return cls(steps=5, decoder=DecoderConfig(widths=(4,)))


def test_round_trip_through_plain_dict_and_checkpoint(tmp_path):
    config = TrainerConfig(lr=0.01, fit=Fit.ED_ES, output=Path("out/run"), decoder=DecoderConfig((8, 4), "tanh"))
    plain = config_to_dict(config)
    assert plain == {
        "lr": 0.01, "steps": 1000, "use_amp": False, "fit": "ed_es",
        "decoder": {"widths": [8, 4], "activation": "tanh"}, "output": "out/run", "scale": [1.0, 2.0],
    }
    json.dumps(plain)  # JSON-safe
    path = save_checkpoint(tmp_path / "c.pt", model_state={}, config=config, step=0, kind="toy")
    restored = config_from_dict(TrainerConfig, load_checkpoint(path).config)
    assert restored == dataclasses.replace(config, output=Path("out/run"))
    assert restored.decoder.widths == (8, 4) and isinstance(restored.scale, tuple)


def test_missing_keys_take_defaults_and_ints_become_floats():
    config = config_from_dict(TrainerConfig, {"lr": 1, "decoder": {"activation": "gelu"}})
    assert config.lr == 1.0 and isinstance(config.lr, float)
    assert config.decoder == DecoderConfig(activation="gelu") and config.steps == 1000


def test_unknown_keys_are_a_clear_error():
    with pytest.raises(ConfigError, match=r"TrainerConfig: unknown key\(s\) 'learning_rate' \(known: .*lr"):
        config_from_dict(TrainerConfig, {"learning_rate": 0.1})
    with pytest.raises(ConfigError, match=r"TrainerConfig.decoder: unknown key\(s\) 'depth'"):
        config_from_dict(TrainerConfig, {"decoder": {"depth": 3}})


@pytest.mark.parametrize(
    "data, message",
    [
        ({"steps": 1.5}, "TrainerConfig.steps: expected an integer"),
        ({"lr": "fast"}, "TrainerConfig.lr: expected a number"),
        ({"use_amp": "yes"}, "TrainerConfig.use_amp: expected true/false"),
        ({"fit": "never"}, "TrainerConfig.fit: 'never' is not a Fit"),
        ({"decoder": [1, 2]}, "TrainerConfig.decoder: expected a mapping"),
    ],
)
def test_wrong_types_are_clear_errors(data, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(TrainerConfig, data)


def test_non_plain_values_are_refused():
    assert config_to_dict({"n": np.int64(3), "x": np.float32(0.5)}) == {"n": 3, "x": 0.5}
    with pytest.raises(ConfigError, match=r"config.weights: Tensor is not a plain config value"):
        config_to_dict({"weights": torch.zeros(2)})
    with pytest.raises(ConfigError, match="dataclass instance or a mapping"):
        config_to_dict(TrainerConfig)


def test_json_spec_files(tmp_path):
    path = tmp_path / "spec.json"
    save_config_json(TrainerConfig.tiny(), path)
    assert load_config_json(TrainerConfig, path) == TrainerConfig.tiny()
    path.write_text(json.dumps({"lr": 0.1, "epochs": 3}))
    with pytest.raises(ConfigError, match=r"spec.json: TrainerConfig: unknown key\(s\) 'epochs'"):
        load_config_json(TrainerConfig, path)
    path.write_text("{not json")
    with pytest.raises(InputFileError, match="spec.json: not a readable JSON config"):
        load_config_json(TrainerConfig, path)
    with pytest.raises(InputFileError, match="missing.json: no such config file"):
        load_config_json(TrainerConfig, tmp_path / "missing.json")


def test_tiny_convention():
    assert tiny_config(TrainerConfig).steps == 5
    with pytest.raises(TypeError, match="DecoderConfig has no tiny"):
        tiny_config(DecoderConfig)

import math

import pytest
from transformers import GenerationConfig

from specvlm_hf import PruneConfig


def test_defaults_match_design():
    cfg = PruneConfig()
    assert (cfg.keep_ratio, cfg.stage1_mass, cfg.stage1_max_share, cfg.scorer) == (0.1, None, 1.0, "verifier")
    assert (cfg.layers, cfg.positions, cfg.num_draft_tokens, cfg.seed) == ("all", "original", 5, 0)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"keep_ratio": 0.0}, "keep_ratio"),
        ({"keep_ratio": 1.5}, "keep_ratio"),
        ({"keep_ratio": math.nan}, "keep_ratio"),
        ({"keep_ratio": "0.1"}, "keep_ratio"),
        ({"stage1_mass": 0.0}, "stage1_mass"),
        ({"stage1_mass": 1.01}, "stage1_mass"),
        ({"stage1_max_share": 0.0}, "stage1_max_share"),
        ({"scorer": "attention"}, "scorer"),
        ({"positions": "shifted"}, "positions"),
        ({"num_draft_tokens": 0}, "num_draft_tokens"),
        ({"num_draft_tokens": 2.5}, "num_draft_tokens"),
        ({"layers": []}, "layers"),
        ({"layers": "first"}, "layers"),
        ({"layers": [0, 1.5]}, "layers"),
        ({"seed": "x"}, "seed"),
    ],
)
def test_invalid_fields_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        PruneConfig(**kwargs)


def test_layer_indices_range_checked():
    assert PruneConfig(layers=[0, -1]).layer_indices(4) == [0, 3]
    assert PruneConfig().layer_indices(3) == [0, 1, 2]
    with pytest.raises(ValueError, match="layers.*4 decoder layers"):
        PruneConfig(layers=[4]).layer_indices(4)


def test_frozen_and_round_trip_through_generation_config(tmp_path):
    cfg = PruneConfig(keep_ratio=0.25, layers=[1, 2], scorer="topk", stage1_mass=0.3)
    with pytest.raises(AttributeError):
        cfg.keep_ratio = 0.5  # type: ignore[misc]
    assert PruneConfig.from_dict(cfg.to_dict()) == cfg
    generation_config = GenerationConfig(max_new_tokens=4)
    generation_config.video_pruning = cfg.to_dict()
    generation_config.save_pretrained(tmp_path)
    reloaded = GenerationConfig.from_pretrained(tmp_path)
    assert PruneConfig.coerce(reloaded.video_pruning) == cfg


def test_coerce_rejects_other_types():
    with pytest.raises(TypeError, match="video_pruning.*PruneConfig"):
        PruneConfig.coerce(0.1)
    with pytest.raises(ValueError, match="Unknown PruneConfig field"):
        PruneConfig.from_dict({"keep": 0.1})

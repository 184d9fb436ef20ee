import json
import math

import pytest
from transformers import GenerationConfig

from specvlm_hf import PruneConfig

# Strict configs with loose-only fields warn (tested on its own); the validation tests build many of them.
pytestmark = pytest.mark.filterwarnings("ignore:PruneConfig. .* to verify='loose' only")


def test_defaults_match_design():
    cfg = PruneConfig()
    assert (cfg.keep_ratio, cfg.stage1_mass, cfg.stage1_max_share, cfg.scorer) == (0.1, None, 1.0, "verifier")
    assert cfg.stage1_rule == "paper"  # until the selection study and a full benchmark run measure "adaptive"
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
        ({"stage1_rule": "sqrt"}, "stage1_rule"),
        ({"stage1_rule": None}, "stage1_rule"),
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


def test_stage1_rule_and_similarity_scorer():
    paper = PruneConfig(stage1_rule="paper")
    assert paper.stage1_rule == "paper" and PruneConfig.from_dict(paper.to_dict()) == paper
    with pytest.raises(ValueError, match="stage1_rule must be one of .*'paper'"):
        PruneConfig(stage1_rule="Paper")
    similarity = PruneConfig(scorer="similarity")
    assert similarity.needs_target_capture and not similarity.needs_verifier_attention
    assert PruneConfig().needs_target_capture and PruneConfig(scorer="topk").needs_target_capture
    assert not PruneConfig(scorer="uniform").needs_target_capture
    assert not PruneConfig(scorer="random").needs_target_capture


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


# -- loose verification fields ------------------------------------------------------------------------------------------


def test_loose_defaults():
    cfg = PruneConfig()
    assert (cfg.verify, cfg.relax_ratio, cfg.relevance_top_n, cfg.loose_rule) == ("strict", 0.7, 10, "any")
    assert (cfg.loose_top_k, cfg.shift_window, cfg.protect_tokens) == (5, 1, ())
    assert not cfg.is_loose and PruneConfig(verify="loose").is_loose


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"verify": "lossy"}, "verify"),
        ({"verify": "Loose"}, "verify"),
        ({"verify": None}, "verify"),
        ({"verify": True}, "verify"),
        ({"verify": 1}, "verify"),
        ({"relax_ratio": -0.01}, "relax_ratio"),
        ({"relax_ratio": 1.01}, "relax_ratio"),
        ({"relax_ratio": math.nan}, "relax_ratio"),
        ({"relax_ratio": math.inf}, "relax_ratio"),
        ({"relax_ratio": "0.5"}, "relax_ratio"),
        ({"relax_ratio": True}, "relax_ratio"),
        ({"relax_ratio": False}, "relax_ratio"),
        ({"relax_ratio": None}, "relax_ratio"),
        ({"relax_ratio": 2}, "relax_ratio"),
        ({"relevance_top_n": 0}, "relevance_top_n"),
        ({"relevance_top_n": -3}, "relevance_top_n"),
        ({"relevance_top_n": 2.0}, "relevance_top_n"),
        ({"relevance_top_n": math.nan}, "relevance_top_n"),
        ({"relevance_top_n": True}, "relevance_top_n"),
        ({"relevance_top_n": "10"}, "relevance_top_n"),
        ({"relevance_top_n": None}, "relevance_top_n"),
        ({"loose_rule": "topk"}, "loose_rule"),
        ({"loose_rule": None}, "loose_rule"),
        ({"loose_rule": True}, "loose_rule"),
        ({"loose_top_k": 0}, "loose_top_k"),
        ({"loose_top_k": 1.5}, "loose_top_k"),
        ({"loose_top_k": True}, "loose_top_k"),
        ({"loose_top_k": "5"}, "loose_top_k"),
        ({"loose_top_k": math.nan}, "loose_top_k"),
        ({"shift_window": -1}, "shift_window"),
        ({"shift_window": 1.0}, "shift_window"),
        ({"shift_window": False}, "shift_window"),
        ({"shift_window": True}, "shift_window"),
        ({"shift_window": None}, "shift_window"),
        ({"shift_window": math.nan}, "shift_window"),
        ({"protect_tokens": "not"}, "protect_tokens"),
        ({"protect_tokens": b"no"}, "protect_tokens"),
        ({"protect_tokens": 5}, "protect_tokens"),
        ({"protect_tokens": None}, "protect_tokens"),
        ({"protect_tokens": {"not": 1}}, "protect_tokens"),
        ({"protect_tokens": [1, -2]}, "protect_tokens"),
        ({"protect_tokens": [1, 2.0]}, "protect_tokens"),
        ({"protect_tokens": [1, math.nan]}, "protect_tokens"),
        ({"protect_tokens": [True]}, "protect_tokens"),
        ({"protect_tokens": [1, None]}, "protect_tokens"),
        ({"protect_tokens": ["not"]}, "protect_tokens"),
        ({"protect_tokens": [[1, 2]]}, "protect_tokens"),
    ],
)
def test_invalid_loose_fields_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=f"PruneConfig.{field}"):
        PruneConfig(**kwargs)


def test_protect_tokens_error_points_to_word_token_ids():
    with pytest.raises(ValueError, match="word_token_ids"):
        PruneConfig(protect_tokens="not")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"verify": "loose"},
        {"verify": "strict", "relax_ratio": 0.0},
        {"verify": "loose", "relax_ratio": 0},
        {"verify": "loose", "relax_ratio": 1},
        {"verify": "loose", "relax_ratio": 1.0},
        {"verify": "loose", "relax_ratio": 0.35},
        {"relevance_top_n": 1},
        {"relevance_top_n": 4096},
        {"loose_rule": "target_topk", "loose_top_k": 1},
        {"loose_rule": "any", "loose_top_k": 100},
        {"shift_window": 0},
        {"shift_window": 8},
        {"protect_tokens": []},
        {"protect_tokens": [0]},
        {"protect_tokens": (151645, 3)},
    ],
)
def test_valid_loose_fields_are_accepted(kwargs):
    cfg = PruneConfig(**kwargs)
    for name, value in kwargs.items():
        if name != "protect_tokens":
            assert getattr(cfg, name) == value


@pytest.mark.parametrize(
    "given, stored",
    [
        ([5, 3, 5], (3, 5)),
        ((9,), (9,)),
        ({2, 1}, (1, 2)),
        (frozenset({7, 0}), (0, 7)),
        (range(3), (0, 1, 2)),
        ([], ()),
    ],
)
def test_protect_tokens_normalised_to_a_sorted_tuple(given, stored):
    cfg = PruneConfig(protect_tokens=given)
    assert cfg.protect_tokens == stored and type(cfg.protect_tokens) is tuple
    assert cfg == PruneConfig(protect_tokens=list(reversed(stored)))  # equal however they were given
    hash(cfg)  # frozen and hashable (a tuple, not a list)


def test_loose_round_trip_through_dict_json_and_generation_config(tmp_path):
    cfg = PruneConfig(keep_ratio=0.3, verify="loose", relax_ratio=0.6, relevance_top_n=4, loose_rule="target_topk",
                      loose_top_k=3, shift_window=2, protect_tokens={612, 45, 151645})
    data = cfg.to_dict()
    assert data["protect_tokens"] == [45, 612, 151645] and isinstance(data["protect_tokens"], list)
    assert (data["verify"], data["relax_ratio"], data["relevance_top_n"]) == ("loose", 0.6, 4)
    assert (data["loose_rule"], data["loose_top_k"], data["shift_window"]) == ("target_topk", 3, 2)
    assert PruneConfig.from_dict(data) == cfg
    assert PruneConfig.from_dict(json.loads(json.dumps(data))) == cfg
    assert PruneConfig.from_dict(PruneConfig().to_dict()) == PruneConfig()
    generation_config = GenerationConfig(max_new_tokens=4)
    generation_config.video_pruning = data
    generation_config.save_pretrained(tmp_path)
    reloaded = GenerationConfig.from_pretrained(tmp_path)
    assert PruneConfig.coerce(reloaded.video_pruning) == cfg
    # to_dict gives a fresh list: mutating it does not touch the frozen config.
    data["protect_tokens"].append(1)
    assert cfg.protect_tokens == (45, 612, 151645)


def test_from_dict_validates_loose_fields():
    data = PruneConfig(verify="loose").to_dict()
    for name, bad in (("verify", "lossless"), ("relax_ratio", 3.0), ("protect_tokens", [-1]), ("shift_window", -2)):
        with pytest.raises(ValueError, match=name):
            PruneConfig.from_dict({**data, name: bad})


def test_loose_only_fields_on_a_strict_config_warn():
    import warnings

    with pytest.warns(UserWarning, match=r"relax_ratio, shift_window apply to verify='loose' only and are ignored"):
        PruneConfig(relax_ratio=0.3, shift_window=2)
    with pytest.warns(UserWarning, match=r"protect_tokens applies to verify='loose' only and is ignored"):
        PruneConfig(protect_tokens=[5])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PruneConfig()
        PruneConfig(relax_ratio=0.7, shift_window=1)  # the defaults, spelled out
        PruneConfig(verify="loose", relax_ratio=0.3, loose_rule="target_topk", protect_tokens=[5])

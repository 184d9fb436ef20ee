"""Bad input: a clear ValueError/TypeError naming the argument and the fix, raised before any decoding, and the
models left exactly as they were (attention implementations, hooks, generation config, registered attention and
mask functions; the draft bit-identical) — also after an exception inside a forward."""

from __future__ import annotations

import copy

import pytest
import torch
from model_state import assert_same_snapshot, snapshot
from transformers import (
    DynamicCache,
    GenerationConfig,
    LogitsProcessorList,
    QuantizedCache,
    SynthIDTextWatermarkingConfig,
)

from specvlm_hf import PruneConfig
from specvlm_hf.compat import CACHE_KEY


def assert_unchanged(before: dict, model) -> None:
    assert_same_snapshot(before, snapshot(model))


@pytest.fixture()
def pair_and_inputs(qwen_pair, video_inputs):
    target, draft = qwen_pair
    inputs = video_inputs(num_frames=4, height=56, width=56)
    # Warm-up: transformers installs output-capturing hooks lazily on a model's first forward.
    target.generate(**inputs, max_new_tokens=2)
    draft.generate(**inputs, max_new_tokens=2)
    return target, draft, inputs


def draft_weights(draft):
    return {name: tensor.clone() for name, tensor in draft.state_dict().items()}


def run_and_expect(target, draft, inputs, error, match, **kwargs):
    """The call raises `error` matching `match` before any forward of either model; both are left unchanged."""
    target_before, draft_before = snapshot(target), snapshot(draft)
    weights = draft_weights(draft)
    options = {"assistant_model": draft, "video_pruning": PruneConfig(), "max_new_tokens": 4, **kwargs}
    options = {k: v for k, v in options.items() if v is not _DROP}
    forwards = []
    hooks = [model.register_forward_pre_hook(lambda *args: forwards.append(1)) for model in {target, draft}]
    try:
        with pytest.raises(error, match=match):
            target.generate(**inputs, **options)
    finally:
        for hook in hooks:
            hook.remove()
    assert not forwards, f"{len(forwards)} forward(s) ran before the error"
    assert_unchanged(target_before, target)
    assert_unchanged(draft_before, draft)
    assert all(torch.equal(weights[k], v) for k, v in draft.state_dict().items())


_DROP = object()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"video_pruning": {"keep_ratio": 2.0}}, ValueError, "keep_ratio"),
        ({"video_pruning": {"keep_ratio": float("nan")}}, ValueError, "keep_ratio"),
        ({"video_pruning": {"scorer": "bogus"}}, ValueError, "scorer"),
        ({"video_pruning": {"positions": "bogus"}}, ValueError, "positions"),
        ({"video_pruning": {"stage1_mass": 0.0}}, ValueError, "stage1_mass"),
        ({"video_pruning": {"num_draft_tokens": 0}}, ValueError, "num_draft_tokens"),
        ({"video_pruning": {"layers": [99]}}, ValueError, "layers"),
        ({"video_pruning": 0.1}, TypeError, "video_pruning.*PruneConfig"),
        ({"assistant_model": _DROP}, ValueError, "assistant_model"),
        ({"num_assistant_tokens": 3}, ValueError, "num_assistant_tokens=3. conflicts.*num_draft_tokens"),
        ({"num_assistant_tokens_schedule": "heuristic"}, ValueError, "num_assistant_tokens_schedule"),
        ({"assistant_confidence_threshold": 0.3}, ValueError, "assistant_confidence_threshold"),
        ({"num_beams": 2}, ValueError, "num_beams"),
        ({"cache_implementation": "static"}, ValueError, "dynamic cache"),
        ({"prefill_chunk_size": 8}, ValueError, "prefill_chunk_size"),
        ({"mm_encoder_outputs": {"video": None}}, ValueError, "mm_encoder_outputs"),
        # Options that used to be silently dropped on our path (or to fail mid-decoding), each with its reason:
        ({"dola_layers": "high"}, ValueError, "`dola_layers` cannot be combined.*final layer"),
        ({"use_mtp": True}, ValueError, "`use_mtp` cannot be combined.*candidate generator"),
        ({"speculation_type": "dflash"}, ValueError, "`speculation_type` cannot be combined"),
        ({"token_healing": True}, ValueError, "`token_healing` cannot be combined.*video placeholders"),
        ({"watermarking_config": SynthIDTextWatermarkingConfig(keys=[3, 5, 7], ngram_len=2)}, ValueError,
         "SynthID.*keeps state"),
        ({"cache_implementation": "quantized", "cache_config": {"backend": "fp8"}}, ValueError,
         "dynamic cache.*cache_implementation='quantized'"),
        ({"cache_implementation": "hybrid_chunked"}, ValueError, "dynamic cache.*'hybrid_chunked'"),
        # GenerationConfig fields count from a passed GenerationConfig too (not only as kwargs).
        ({"generation_config": GenerationConfig(max_new_tokens=4, prompt_lookup_num_tokens=3)}, ValueError,
         "`prompt_lookup_num_tokens` cannot be combined"),
        ({"generation_config": GenerationConfig(max_new_tokens=4, dola_layers="low")}, ValueError, "dola_layers"),
    ],
)
def test_bad_arguments(pair_and_inputs, kwargs, error, match):
    target, draft, inputs = pair_and_inputs
    run_and_expect(target, draft, inputs, error, match, **kwargs)


def test_synthid_watermark_processor_is_rejected(pair_and_inputs):
    target, draft, inputs = pair_and_inputs
    processor = SynthIDTextWatermarkingConfig(keys=[3, 5, 7], ngram_len=2).construct_processor(
        target.config.get_text_config().vocab_size, target.device)
    run_and_expect(target, draft, inputs, ValueError, "SynthID", logits_processor=LogitsProcessorList([processor]))


@pytest.mark.parametrize("field, value", [("dola_layers", "high"), ("token_healing", True),
                                          ("cache_implementation", "quantized")])
def test_unsupported_option_in_the_models_own_generation_config(pair_and_inputs, field, value):
    """generate() merges the model's generation_config into the call: a stored option counts as passed."""
    target, draft, inputs = pair_and_inputs
    configured = copy.deepcopy(target)
    setattr(configured.generation_config, field, value)
    run_and_expect(configured, draft, inputs, ValueError, field)


def test_quantized_cache_object_is_rejected(pair_and_inputs):
    target, draft, inputs = pair_and_inputs
    cache = QuantizedCache(backend="fp8", config=target.config.get_text_config())
    run_and_expect(target, draft, inputs, ValueError, "dynamic cache.*QuantizedCache", past_key_values=cache)


def test_matching_num_assistant_tokens_is_accepted(pair_and_inputs):
    target, draft, inputs = pair_and_inputs
    out = target.generate(**inputs, assistant_model=draft, video_pruning=PruneConfig(num_draft_tokens=3),
                          num_assistant_tokens=3, max_new_tokens=5)
    assert torch.equal(out, target.generate(**inputs, max_new_tokens=5))


def test_batch_of_two(pair_and_inputs):
    target, draft, inputs = pair_and_inputs
    batched = dict(inputs)
    batched["input_ids"] = inputs["input_ids"].repeat(2, 1)
    batched["attention_mask"] = inputs["attention_mask"].repeat(2, 1)
    run_and_expect(target, draft, batched, ValueError, "batch size 1")


def test_inputs_embeds(pair_and_inputs):
    target, draft, inputs = pair_and_inputs
    embeds = dict(inputs)
    embeds["inputs_embeds"] = target.get_input_embeddings()(inputs["input_ids"]).detach()
    run_and_expect(target, draft, embeds, ValueError, "inputs_embeds")


def test_prefilled_cache(pair_and_inputs):
    target, draft, inputs = pair_and_inputs
    cache = DynamicCache(config=target.config.get_text_config())
    with torch.no_grad():
        target(input_ids=inputs["input_ids"][:, :3], use_cache=True, **{CACHE_KEY: cache})
    run_and_expect(target, draft, inputs, ValueError, "past_key_values", past_key_values=cache)


def test_incompatible_draft(pair_and_inputs):
    target, draft, inputs = pair_and_inputs
    other = copy.deepcopy(draft)
    other.config.vision_config.spatial_merge_size = 4
    run_and_expect(target, other, inputs, ValueError, "incompatible.*spatial_merge_size")
    other = copy.deepcopy(draft)
    other.config.video_token_id = 151000
    run_and_expect(target, other, inputs, ValueError, "video_token_id")


def test_placeholders_not_matching_video_grid(pair_and_inputs):
    target, draft, inputs = pair_and_inputs
    garbage = dict(inputs)
    garbage["video_grid_thw"] = inputs["video_grid_thw"] * torch.tensor([[1, 2, 1]])
    run_and_expect(target, draft, garbage, ValueError, "video placeholders")


def test_flash_attention_target_gets_a_clear_error(pair_and_inputs):
    target, draft, inputs = pair_and_inputs
    flash = copy.deepcopy(target)
    flash.get_decoder().config._attn_implementation_internal = "flash_attention_2"
    run_and_expect(flash, draft, inputs, ValueError, "attn_implementation='sdpa'")


def test_text_only_model_gets_a_clear_error(pair_and_inputs):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    _, draft, inputs = pair_and_inputs
    text_only = Qwen2ForCausalLM(Qwen2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                             num_attention_heads=2, num_key_value_heads=1, vocab_size=1000)).eval()
    with pytest.raises(ValueError, match="supports video LLMs of model_type"):
        text_only.generate(input_ids=torch.tensor([[1, 2, 3]]), assistant_model=draft, video_pruning=PruneConfig())


@pytest.mark.parametrize("where", ["target_prefill", "target_verify", "draft"])
def test_state_restored_after_an_exception_inside_a_forward(pair_and_inputs, where):
    target, draft, inputs = pair_and_inputs
    target_before, draft_before = snapshot(target), snapshot(draft)
    weights = draft_weights(draft)
    calls = {"n": 0}

    def explode(module, args, kwargs):
        hidden = kwargs.get("hidden_states", args[0] if args else None)
        calls["n"] += 1
        is_prefill = hidden.shape[1] > 8
        if (where == "target_prefill" and is_prefill) or (where != "target_prefill" and not is_prefill) \
                or where == "draft":
            raise RuntimeError("boom")

    model = draft if where == "draft" else target
    handle = model.get_decoder().layers[0].register_forward_pre_hook(explode, with_kwargs=True)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            target.generate(**inputs, assistant_model=draft, video_pruning=PruneConfig(), max_new_tokens=6)
    finally:
        handle.remove()
    target_after = snapshot(target)
    for key in ("attn", "hooks", "generation_config", "config", "registries", "training"):
        assert target_after[key] == target_before[key], key
    assert_unchanged(draft_before, draft)
    assert all(torch.equal(weights[k], v) for k, v in draft.state_dict().items())

"""Every supported family, through its real processor: greedy lossless across keep ratios, scorers, gamma, prompt
layouts, image+video and two videos; self-speculation accepts everything at keep 1.0; a perturbed draft tower lowers
acceptance; image tokens are never pruned and the draft sees the images through its own tower.

And the family table itself: the real checkpoint pairs pass the compatibility check (tests/real_checkpoints.py), pairs
shaped like them are lossless, LLaVA-NeXT-Video counts placeholders from the frames the inputs hold, a draft with
another M-RoPE split is accepted, and the position layout, pixel tensors and eager attention the table names are what
transformers really prepares and calls."""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
import sys
from types import SimpleNamespace

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from model_state import assert_same_snapshot, snapshot
from real_checkpoints import REAL_PAIRS, as_model, real_config
from transformers import LlavaNextVideoProcessor

from specvlm_hf import FAMILIES, PruneConfig, last_stats
from specvlm_hf.families import check_draft_compatible
from specvlm_hf.testbed import tiny

EXAMPLES = int(os.environ.get("SPECVLM_FUZZ_EXAMPLES", "8"))
FAMILY_NAMES = sorted(FAMILIES)


@functools.cache
def family_setup(model_type: str):
    target, draft = tiny.build_tiny_pair(model_type, seed=0)
    assert target.config.get_text_config().vocab_size != draft.config.get_text_config().vocab_size  # padded pair
    return target, draft, tiny.build_processor(model_type)


def inputs_for(model_type, *, frames=4, size=56, seed=0, layout="video", question_first=False):
    _, _, processor = family_setup(model_type)
    video = tiny.make_video(num_frames=frames, height=size, width=size, seed=seed)
    if layout == "two_videos":
        return tiny.make_inputs(processor, video=[video, tiny.make_video(num_frames=frames, height=size, width=size,
                                                                           seed=seed + 1)],
                                num_videos=2, question_first=question_first)
    image = tiny.make_video(num_frames=1, height=size, width=size, seed=seed + 7)[0] if layout == "image" else None
    return tiny.make_inputs(processor, video=video, image=image, question_first=question_first)


def test_every_family_has_tiny_fixtures():
    assert set(FAMILY_NAMES) <= set(tiny.TINY_FAMILIES), sorted(set(FAMILY_NAMES) - set(tiny.TINY_FAMILIES))


@pytest.mark.parametrize("model_type", FAMILY_NAMES)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    keep_ratio=st.sampled_from([1.0, 0.5, 0.1, 0.02]),
    scorer=st.sampled_from(["verifier", "uniform", "random", "topk"]),
    gamma=st.integers(1, 6),
    layout=st.sampled_from(["video", "image", "two_videos"]),
    question_first=st.booleans(),
    positions=st.sampled_from(["original", "compact"]),
    seed=st.integers(0, 2),
)
def test_greedy_lossless_per_family(model_type, keep_ratio, scorer, gamma, layout, question_first, positions, seed):
    target, draft, _ = family_setup(model_type)
    inputs = inputs_for(model_type, seed=seed, layout=layout, question_first=question_first)
    ref = target.generate(**inputs, max_new_tokens=14)
    out = target.generate(**inputs, max_new_tokens=14, assistant_model=draft,
                          video_pruning=PruneConfig(keep_ratio=keep_ratio, scorer=scorer, num_draft_tokens=gamma,
                                                    positions=positions, seed=seed))
    assert torch.equal(out, ref)
    stats = last_stats(target)
    videos = 2 if layout == "two_videos" else 1
    assert stats.kept_video_tokens == max(videos, int(stats.video_tokens * keep_ratio))


@pytest.mark.parametrize("model_type", FAMILY_NAMES)
def test_self_speculation_and_perturbed_tower(model_type):
    target, _, _ = family_setup(model_type)
    inputs = inputs_for(model_type, frames=4, size=84)
    ref = target.generate(**inputs, max_new_tokens=20)
    config = PruneConfig(keep_ratio=1.0, num_draft_tokens=4)
    out = target.generate(**inputs, max_new_tokens=20, assistant_model=target, video_pruning=config)
    assert torch.equal(out, ref)
    assert last_stats(target).acceptance_rate >= 0.99

    blind = copy.deepcopy(target)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in blind.named_parameters():
            if "visual" in name or "vision_tower" in name:
                parameter.add_(torch.randn(parameter.shape, generator=generator) * 2.0)
    out = target.generate(**inputs, max_new_tokens=20, assistant_model=blind, video_pruning=config)
    assert torch.equal(out, ref)
    assert last_stats(target).acceptance_rate < 0.8


@pytest.mark.parametrize("model_type", FAMILY_NAMES)
def test_images_are_never_pruned_and_come_from_the_draft_tower(model_type):
    target, draft, _ = family_setup(model_type)
    inputs = inputs_for(model_type, layout="image")
    image_id = FAMILIES[model_type].image_token_id(target.config)
    seen = {}

    def grab(module, args, kwargs):
        if "mm_encoder_outputs" in kwargs and not seen:
            seen.update(kwargs)

    handle = draft.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        target.generate(**inputs, max_new_tokens=4, assistant_model=draft, video_pruning=PruneConfig(keep_ratio=0.1))
    finally:
        handle.remove()
    assert int((seen["input_ids"] == image_id).sum()) == int((inputs["input_ids"] == image_id).sum()) > 0
    image_keys = [k for k in FAMILIES[model_type].image_inputs if inputs.get(k) is not None]
    with torch.no_grad():
        own = draft.get_image_features(**{k: inputs[k] for k in image_keys}, return_dict=True).pooler_output
    flatten = lambda features: torch.cat([f.reshape(-1, f.shape[-1]) for f in features])  # noqa: E731
    torch.testing.assert_close(flatten(seen["mm_encoder_outputs"]["image"].pooler_output), flatten(own))


# -- the family table against the real checkpoints (tests/real_checkpoints.py) ----------------------------------------


@pytest.mark.parametrize("model_type", FAMILY_NAMES)
def test_real_checkpoint_pairs_pass_the_compatibility_check(model_type):
    """Every real (target, draft) pair of the family is accepted: the compared attributes are ones the real pairs
    share (Qwen3-VL 8B / 2B included, whose vision towers differ)."""
    assert set(REAL_PAIRS) == set(FAMILY_NAMES)
    for target_name, draft_name in REAL_PAIRS[model_type]:
        assert check_draft_compatible(as_model(target_name), as_model(draft_name)) is FAMILIES[model_type]


def test_video_token_counts_on_the_real_geometry():
    """Placeholders per video with the real configs: Qwen (t, h, w) / merge², LLaVA-OneVision 27x27 patches pooled to
    14x14 = 196 per frame + 1 newline, LLaVA-NeXT-Video 24x24 pooled to 12x12 = 144 per frame."""
    qwen = real_config("Qwen/Qwen2.5-VL-7B-Instruct")
    grids = {"video_grid_thw": torch.tensor([[4, 36, 64], [2, 10, 12]])}
    assert FAMILIES["qwen2_5_vl"].video_token_counts(qwen, grids) == [2304, 60]
    onevision = real_config("llava-hf/llava-onevision-qwen2-7b-ov-hf")
    frames = {"pixel_values_videos": torch.zeros(2, 8, 3, 384, 384)}
    assert FAMILIES["llava_onevision"].video_token_counts(onevision, frames) == [8 * 196 + 1] * 2
    next_video = real_config("llava-hf/LLaVA-NeXT-Video-7B-hf")
    frames = {"pixel_values_videos": torch.zeros(1, 8, 3, 336, 336)}
    assert FAMILIES["llava_next_video"].video_token_counts(next_video, frames) == [8 * 144]


def test_mismatching_geometry_is_rejected_with_a_clear_error():
    """What the check compares does change placeholders or positions: a Qwen2.5-VL draft with another temporal rope
    spacing (tokens_per_second) or merge size is rejected, naming the attribute and both values."""
    target = real_config("Qwen/Qwen2.5-VL-7B-Instruct")
    for attribute, value in (("tokens_per_second", 4), ("spatial_merge_size", 1)):
        draft = real_config("Qwen/Qwen2.5-VL-3B-Instruct")
        setattr(draft.vision_config, attribute, value)
        with pytest.raises(ValueError, match=rf"vision_config\.{attribute}: target=\d+, draft={value}"):
            check_draft_compatible(SimpleNamespace(config=target), SimpleNamespace(config=draft))


# -- real-shaped tiny pairs, LLaVA-NeXT-Video frame sizes, M-RoPE splits ---------------------------------------------


@functools.cache
def real_shaped_setup(model_type: str):
    target, draft = tiny.build_tiny_pair(model_type, seed=3, shape="real")
    return target, draft, tiny.build_processor(model_type)


@pytest.mark.parametrize("model_type", FAMILY_NAMES)
@pytest.mark.parametrize(("keep_ratio", "scorer", "gamma"), [(0.1, "verifier", 4), (0.5, "uniform", 2), (1.0, "topk", 5)])
def test_real_shaped_pairs_are_lossless(model_type, keep_ratio, scorer, gamma):
    """Pairs shaped like the real checkpoints (same tower, other merger / LM width; Qwen3-VL: other towers, equal
    vocabs) give exactly plain target.generate's tokens, greedy, float32."""
    target, draft, processor = real_shaped_setup(model_type)
    inputs = tiny.make_inputs(processor, video=tiny.make_video(num_frames=4, height=56, width=84, seed=5))
    ref = target.generate(**inputs, max_new_tokens=16)
    out = target.generate(**inputs, max_new_tokens=16, assistant_model=draft,
                          video_pruning=PruneConfig(keep_ratio=keep_ratio, scorer=scorer, num_draft_tokens=gamma))
    assert torch.equal(out, ref)
    stats = last_stats(target)
    assert stats.kept_video_tokens == max(1, int(stats.video_tokens * keep_ratio)) and stats.rounds > 0


class _PooledCountProcessor(LlavaNextVideoProcessor):
    """A LLaVA-NeXT-Video processor that writes as many placeholders per frame as the model's pooling produces,
    ⌊g/2⌋² for a g x g patch grid (transformers' processor writes ⌊g²/4⌋, which differs on odd grids)."""

    def replace_video_token(self, video_inputs=None, video_idx=0, **kwargs):
        frames = video_inputs["pixel_values_videos"][video_idx]
        height, width = frames.shape[-2:]
        return self.video_token * (frames.shape[0] * (height // self.patch_size // 2) * (width // self.patch_size // 2))


def _pooled_count_processor(processor):
    return _PooledCountProcessor(
        video_processor=processor.video_processor, image_processor=processor.image_processor,
        tokenizer=processor.tokenizer, chat_template=processor.chat_template, patch_size=processor.patch_size,
        vision_feature_select_strategy="default", num_additional_image_tokens=1,
    )  # fmt: skip


@functools.cache
def next_video_any_size_pair():
    """LLaVA-NeXT-Video with a tower that takes frames of any size (Dinov2 interpolates its position embeddings; CLIP
    refuses anything but vision_config.image_size, here 112)."""
    return tiny.build_tiny_pair("llava_next_video", seed=0, vision_geometry={"vision_model_type": "dinov2"})


@pytest.mark.parametrize("crop", [84, 98])
def test_llava_next_video_counts_the_frames_the_inputs_hold(crop):
    """A processor cropping frames to another size than the config's image_size (84 px: a 6x6 grid pooled to 3x3; 98
    px: an odd 7x7 grid, pooled to 3x3 as well), end to end: the placeholders per frame follow the frames, not the
    config (which says 112 px: 4x4 per frame), and the call is lossless."""
    target, draft = next_video_any_size_pair()
    processor = tiny.build_processor("llava_next_video", vision_geometry={"image_size": crop})
    if crop % 28:  # odd grid: transformers' processor writes ⌊49/4⌋ = 12 per frame, the model pools to 9
        processor = _pooled_count_processor(processor)
    inputs = tiny.make_inputs(processor, video=tiny.make_video(num_frames=4, height=112, width=112, seed=2))
    assert inputs["pixel_values_videos"].shape[-2:] == (crop, crop)
    assert tiny.video_placeholder_count(inputs, "llava_next_video") == 4 * 9
    ref = target.generate(**inputs, max_new_tokens=12)
    out = target.generate(**inputs, max_new_tokens=12, assistant_model=draft,
                          video_pruning=PruneConfig(keep_ratio=0.25, num_draft_tokens=3))
    assert torch.equal(out, ref)
    assert last_stats(target).video_tokens == 36 and last_stats(target).kept_video_tokens == 9


def test_llava_next_video_odd_grid_from_the_stock_processor_is_rejected_before_decoding():
    """transformers' own processor writes ⌊g²/4⌋ placeholders per frame while the model pools to ⌊g/2⌋²: on an odd grid
    (7x7) the prompt cannot run even without video_pruning; with it, the call fails before any forward, models
    unchanged."""
    config_size = {"image_size": 98}  # a CLIP tower of 98 px: 7x7 patches, as the processor crops
    target, draft = tiny.build_tiny_pair("llava_next_video", seed=0, vision_geometry=config_size)
    processor = tiny.build_processor("llava_next_video", vision_geometry=config_size)
    inputs = tiny.make_inputs(processor, video=tiny.make_video(num_frames=2, height=98, width=98, seed=1))
    assert tiny.video_placeholder_count(inputs, "llava_next_video") == 2 * 12
    with pytest.raises(ValueError, match="do not match"):
        target.generate(**inputs, max_new_tokens=2)
    before = [snapshot(target), snapshot(draft)]  # after the plain call above installed transformers' lazy hooks
    forwards = []
    hooks = [m.register_forward_pre_hook(lambda *_: forwards.append(1)) for m in (target, draft)]
    try:
        with pytest.raises(ValueError, match="24 video placeholders but the video inputs describe 18"):
            target.generate(**inputs, max_new_tokens=2, assistant_model=draft, video_pruning=PruneConfig())
    finally:
        for hook in hooks:
            hook.remove()
    assert not forwards
    assert_same_snapshot(before[0], snapshot(target))
    assert_same_snapshot(before[1], snapshot(draft))


def _with_mrope(model, section, interleaved=None):
    """`model` with another M-RoPE frequency split (the rotary embedding reads it when built)."""
    text_config = model.config.text_config
    text_config.rope_parameters = {**text_config.rope_parameters, "mrope_section": list(section)}
    if interleaved is not None:
        text_config.rope_parameters["mrope_interleaved"] = interleaved
    language_model = model.model.language_model
    language_model.rotary_emb = type(language_model.rotary_emb)(config=text_config)
    return model


def _prepared_positions(model, inputs):
    seen = []
    hook = model.register_forward_pre_hook(lambda m, a, k: seen.append(k["position_ids"]), with_kwargs=True)
    try:
        model.generate(**inputs, max_new_tokens=1)
    finally:
        hook.remove()
    return seen[0]


@pytest.mark.parametrize(("model_type", "section"), [("qwen2_5_vl", (4, 2, 2)), ("qwen3_vl", (8, 4, 4))])
def test_a_draft_with_another_mrope_split_is_accepted_and_lossless(model_type, section):
    """The M-RoPE split (and Qwen3-VL's interleaving flag) is not part of the compatibility check because it never
    changes positions: generate prepares the same position ids whatever the split; each model only rotates them its
    own way. A draft with another split changes its own logits, is accepted, and the call stays lossless."""
    target, _, processor = family_setup(model_type)
    inputs = inputs_for(model_type)
    plain_draft = tiny.build_tiny_model(model_type, "draft", seed=1)
    draft = _with_mrope(tiny.build_tiny_model(model_type, "draft", seed=1), section,
                        interleaved=False if model_type == "qwen3_vl" else None)
    assert draft.config.text_config.rope_parameters["mrope_section"] != target.config.text_config.rope_parameters[
        "mrope_section"]
    assert torch.equal(_prepared_positions(draft, inputs), _prepared_positions(plain_draft, inputs))
    with torch.no_grad():
        assert not torch.allclose(draft(**inputs).logits[0, -1], plain_draft(**inputs).logits[0, -1])
    ref = target.generate(**inputs, max_new_tokens=12)
    out = target.generate(**inputs, max_new_tokens=12, assistant_model=draft,
                          video_pruning=PruneConfig(keep_ratio=0.5, num_draft_tokens=3))
    assert torch.equal(out, ref)


# -- the facts the rest of the package still assumes, now in the table ------------------------------------------------


@pytest.mark.parametrize("model_type", FAMILY_NAMES)
def test_position_layout_is_what_generate_prepares(model_type):
    """FamilySpec.position_id_rows / text_position_row describe the position ids generate prepares for the target's
    prefill: 4 rows for M-RoPE (the text row 0..L-1, the rope rows compressing the video), 1-D for LLaVA."""
    target, _, _ = family_setup(model_type)
    inputs = inputs_for(model_type)
    spec = FAMILIES[model_type]
    prepared = _prepared_positions(target, inputs)
    rows = spec.position_rows(prepared)
    length = inputs["input_ids"].shape[1]
    assert rows.shape == (spec.position_id_rows, 1, length)
    if spec.text_position_row is None:
        assert prepared.shape == (1, length) and torch.equal(rows[0, 0], torch.arange(length))
    else:
        rope_rows = [r for r in range(spec.position_id_rows) if r != spec.text_position_row]
        assert torch.equal(rows[spec.text_position_row, 0], torch.arange(length))
        assert int(rows[rope_rows, 0].max()) < length - 1  # the video's positions are compressed on the rope rows
    wrong = torch.zeros(3 if spec.position_id_rows == 4 else 4, 1, length, dtype=torch.long)
    with pytest.raises(ValueError, match=f"{spec.position_id_rows}-row position ids"):
        spec.position_rows(wrong)


@pytest.mark.parametrize("model_type", FAMILY_NAMES)
def test_pixel_inputs_are_the_tensors_that_carry_each_modality(model_type):
    spec = FAMILIES[model_type]
    with_both = inputs_for(model_type, layout="image")
    assert {spec.video_pixels, spec.image_pixels} <= set(with_both)
    assert spec.pixel_input("video") == spec.video_pixels and spec.pixel_input("image") == spec.image_pixels
    _, _, processor = family_setup(model_type)
    text_only = tiny.make_inputs(processor, num_videos=0)
    assert spec.video_pixels not in text_only and spec.image_pixels not in text_only
    with pytest.raises(ValueError, match="modality"):
        spec.pixel_input("audio")


@pytest.mark.parametrize("model_type", FAMILY_NAMES)
def test_eager_attention_is_the_function_the_attention_modules_call(model_type, monkeypatch):
    """FamilySpec.eager_attention(module) is the function an eager forward of that module really calls (for LLaVA
    families: the language model's modeling file, not the family's)."""
    spec = FAMILIES[model_type]
    model = tiny.build_tiny_model(model_type, "target", attn_implementation="eager")
    decoder_attention = [layer.self_attn for layer in model.get_decoder().layers]
    function = spec.eager_attention(decoder_attention[0])
    callers = []

    def recording(module, *args, **kwargs):  # eager attention functions take the attention module first
        callers.append(module)
        return function(module, *args, **kwargs)

    monkeypatch.setattr(sys.modules[type(decoder_attention[0]).__module__], spec.eager_attention_name, recording)
    with torch.no_grad():
        model(**inputs_for(model_type))
    assert [m for m in callers if any(m is a for a in decoder_attention)] == decoder_attention


def test_eager_attention_lookup_names_the_file_when_it_has_none():
    with pytest.raises(ValueError, match=r"torch\.nn\.modules\.linear .*Linear.* attn_implementation='sdpa'"):
        FAMILIES["qwen2_5_vl"].eager_attention(torch.nn.Linear(2, 2))


def test_family_spec_rejects_inconsistent_entries():
    spec = FAMILIES["qwen2_vl"]
    with pytest.raises(ValueError, match="video_pixels"):
        dataclasses.replace(spec, video_pixels="pixel_values")
    with pytest.raises(ValueError, match="text_position_row"):
        dataclasses.replace(spec, text_position_row=4)

"""Every supported family, through its real processor: greedy lossless across keep ratios, scorers, gamma, prompt
layouts, image+video and two videos; self-speculation accepts everything at keep 1.0; a perturbed draft tower lowers
acceptance; image tokens are never pruned and the draft sees the images through its own tower."""

from __future__ import annotations

import copy
import functools
import os

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from specvlm_hf import FAMILIES, PruneConfig, last_stats
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

"""Fuzzed greedy losslessness over every family (issue 6): family x video shape (frames, resolution) x keep_ratio x
scorer x positions x gamma x max_new_tokens x eos forcing x prompt layout, plus the Stage I knobs,
self-speculation, the stop kind (eos / custom StoppingCriteria / stop string) and repetition processors. Each
example compares, token for token in float32, `generate(..., assistant_model=draft, video_pruning=...)` with the
same call on the target alone.

`SPECVLM_FUZZ_EXAMPLES` sets the example count (default 200; `make fuzz` runs 2000). Models are built once per
family; a family of `specvlm_hf.FAMILIES` missing from the tiny testbed fails loudly.
"""

from __future__ import annotations

import functools
import os

import torch
from generate_options import StopOnToken
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import StoppingCriteriaList

from specvlm_hf import FAMILIES, PruneConfig, last_stats
from specvlm_hf.testbed import tiny

EXAMPLES = int(os.environ.get("SPECVLM_FUZZ_EXAMPLES", "200"))
FAMILY_NAMES = sorted(FAMILIES)
PLAIN_TOKENS = 28


@functools.cache
def family(model_type: str):
    target, draft = tiny.build_tiny_pair(model_type, seed=0)
    return target, draft, tiny.build_processor(model_type)


@functools.cache
def fuzz_inputs(model_type: str, frames: int, size: tuple[int, int], layout: str, seed: int):
    _, _, processor = family(model_type)
    video = tiny.make_video(num_frames=frames, height=size[0], width=size[1], seed=seed)
    question_first = layout == "question_first"
    if layout == "two_videos":
        other = tiny.make_video(num_frames=frames, height=size[0], width=size[1], seed=seed + 11)
        return tiny.make_inputs(processor, video=[video, other], num_videos=2)
    image = tiny.make_video(num_frames=1, height=size[0], width=size[1], seed=seed + 7)[0] if layout == "image" else None
    return tiny.make_inputs(processor, video=video, image=image, question_first=question_first)


@functools.cache
def plain_tokens(model_type: str, frames: int, size: tuple[int, int], layout: str, seed: int) -> tuple[int, ...]:
    """The target's own greedy continuation (used only to choose an eos token to force)."""
    target, _, _ = family(model_type)
    inputs = fuzz_inputs(model_type, frames, size, layout, seed)
    out = target.generate(**inputs, max_new_tokens=PLAIN_TOKENS)
    return tuple(out[0, inputs["input_ids"].shape[1]:].tolist())


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True)
@given(
    model_type=st.sampled_from(FAMILY_NAMES),
    frames=st.sampled_from([1, 2, 3, 4, 6, 8]),
    size=st.sampled_from([(56, 56), (56, 84), (84, 56), (112, 112), (168, 112)]),
    keep_ratio=st.sampled_from([1.0, 0.5, 0.25, 0.1, 0.001]) | st.floats(0.005, 1.0),
    scorer=st.sampled_from(["verifier", "uniform", "random", "topk"]),
    positions=st.sampled_from(["original", "compact"]),
    gamma=st.integers(1, 8),
    max_new_tokens=st.integers(1, PLAIN_TOKENS),
    eos_at=st.none() | st.integers(0, PLAIN_TOKENS - 1),
    layout=st.sampled_from(["video", "question_first", "image", "two_videos"]),
    seed=st.integers(0, 2),
    stage1=st.sampled_from([(None, 1.0), (0.9, 0.5), (0.2, 1.0)]),
    self_draft=st.booleans(),
    stop_kind=st.sampled_from(["eos", "eos", "criterion", "stop_string"]),
    processor=st.sampled_from([None, None, "repetition_penalty", "no_repeat_ngram_size"]),
)
def test_greedy_lossless_fuzz_all_families(model_type, frames, size, keep_ratio, scorer, positions, gamma,
                                           max_new_tokens, eos_at, layout, seed, stage1, self_draft, stop_kind,
                                           processor):
    target, draft, _ = family(model_type)
    # Qwen video processors need at least one temporal patch (2 frames); LLaVA takes single frames.
    frames = max(frames, int(getattr(target.config.vision_config, "temporal_patch_size", 1) or 1))
    inputs = fuzz_inputs(model_type, frames, size, layout, seed)
    prompt = inputs["input_ids"].shape[1]
    options: dict = {"max_new_tokens": max_new_tokens, "do_sample": False}
    if processor == "repetition_penalty":
        options["repetition_penalty"] = 2.0
    elif processor == "no_repeat_ngram_size":
        options["no_repeat_ngram_size"] = 2
    if eos_at is not None:
        # Force an early stop at a token the target emits at step `eos_at` (of its plain continuation): as the eos
        # token, through a custom StoppingCriteria, or as a stop string.
        stop = plain_tokens(model_type, frames, size, layout, seed)[eos_at]
        if stop_kind == "eos":
            options["eos_token_id"] = stop
        elif stop_kind == "criterion":
            options["stopping_criteria"] = StoppingCriteriaList([StopOnToken(stop)])
        else:
            tokenizer = family(model_type)[2].tokenizer
            word = tokenizer.decode([stop]).strip()
            if word:
                options.update(stop_strings=[word], tokenizer=tokenizer)
    ref = target.generate(**inputs, **options)
    config = PruneConfig(keep_ratio=keep_ratio, scorer=scorer, positions=positions, num_draft_tokens=gamma, seed=seed,
                         stage1_mass=stage1[0], stage1_max_share=stage1[1])
    # self_draft: self-speculation (the target drafts on its own pruned prompt, reusing its vision features).
    out = target.generate(**inputs, **options, assistant_model=target if self_draft else draft, video_pruning=config)
    assert out.shape == ref.shape, f"length differs: {tuple(out.shape)} vs stock {tuple(ref.shape)}"
    assert torch.equal(out, ref), f"first mismatch at {int((out != ref).nonzero()[0, 1])}"

    stats = last_stats(target)
    video_id = FAMILIES[model_type].video_token_id(target.config)
    videos = 2 if layout == "two_videos" else 1
    assert stats.new_tokens == out.shape[1] - prompt
    assert stats.video_tokens == int((inputs["input_ids"] == video_id).sum())
    if stats.rounds:  # the selection runs with the draft's first round
        assert stats.kept_video_tokens == max(videos, int(stats.video_tokens * keep_ratio))
        assert stats.drafted <= gamma * stats.rounds
        assert len(stats.accept_histogram) <= gamma + 1

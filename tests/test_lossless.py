"""Greedy output with `video_pruning` equals plain `target.generate`, token for token, in float32.

The pair is a smaller draft with its own vision tower and a padded vocabulary (152064 vs 151936, as
Qwen2.5-VL-7B vs -3B). Broad coverage comes from hypothesis; `make fuzz` raises the example count.
"""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from specvlm_hf import PruneConfig, last_stats

EXAMPLES = int(os.environ.get("SPECVLM_FUZZ_EXAMPLES", "25"))


def assert_same_tokens(out: torch.Tensor, ref: torch.Tensor) -> None:
    assert out.shape == ref.shape, f"length differs: {out.shape} vs {ref.shape}"
    assert torch.equal(out, ref), f"first mismatch at {int((out != ref).nonzero()[0, 1])}"


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    keep_ratio=st.sampled_from([1.0, 0.5, 0.25, 0.1, 0.03]) | st.floats(0.01, 1.0),
    scorer=st.sampled_from(["verifier", "uniform", "random", "topk"]),
    gamma=st.integers(1, 8),
    max_new_tokens=st.integers(1, 24),
    positions=st.sampled_from(["original", "compact"]),
    question_first=st.booleans(),
    num_videos=st.integers(1, 2),
    frames=st.sampled_from([2, 4, 6]),
    size=st.sampled_from([(56, 56), (84, 56), (112, 112)]),
    eos_at=st.none() | st.integers(0, 10),
    seed=st.integers(0, 3),
)
def test_greedy_lossless_fuzz(qwen_pair, video_inputs, keep_ratio, scorer, gamma, max_new_tokens, positions,
                              question_first, num_videos, frames, size, eos_at, seed):
    target, draft = qwen_pair
    inputs = video_inputs(num_frames=frames, height=size[0], width=size[1], seed=seed,
                          question_first=question_first, num_videos=num_videos)
    options = {"max_new_tokens": max_new_tokens, "do_sample": False}
    if eos_at is not None:
        # Force an early stop: make a token the target emits at step `eos_at` the eos token.
        plain = target.generate(**inputs, **options)
        prompt_length = inputs["input_ids"].shape[1]
        if eos_at < plain.shape[1] - prompt_length:
            options["eos_token_id"] = int(plain[0, prompt_length + eos_at])
    ref = target.generate(**inputs, **options)
    config = PruneConfig(keep_ratio=keep_ratio, scorer=scorer, num_draft_tokens=gamma, positions=positions, seed=seed)
    out = target.generate(**inputs, **options, assistant_model=draft, video_pruning=config)
    assert_same_tokens(out, ref)
    stats = last_stats(target)
    assert stats.new_tokens == out.shape[1] - inputs["input_ids"].shape[1]
    if stats.rounds:  # the draft (and so the selection) only runs when more than the prefill's token is needed
        assert stats.kept_video_tokens == max(num_videos, int(stats.video_tokens * keep_ratio))


@pytest.mark.parametrize("keep_ratio", [1.0, 0.1])
def test_self_speculation_with_the_target_object(qwen_pair, video_inputs, keep_ratio):
    target, _ = qwen_pair
    inputs = video_inputs(num_frames=4, height=84, width=84)
    ref = target.generate(**inputs, max_new_tokens=20)
    out = target.generate(**inputs, max_new_tokens=20, assistant_model=target,
                          video_pruning=PruneConfig(keep_ratio=keep_ratio))
    assert_same_tokens(out, ref)
    if keep_ratio == 1.0:
        assert last_stats(target).acceptance_rate == 1.0


def test_prompt_without_video_is_lossless_and_prunes_nothing(qwen_pair, qwen_processor):
    target, draft = qwen_pair
    messages = [{"role": "user", "content": [{"type": "text", "text": "Describe the video."}]}]
    inputs = qwen_processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                return_dict=True, return_tensors="pt")
    ref = target.generate(**inputs, max_new_tokens=12)
    out = target.generate(**inputs, max_new_tokens=12, assistant_model=draft, video_pruning=PruneConfig())
    assert_same_tokens(out, ref)
    stats = last_stats(target)
    assert (stats.video_tokens, stats.kept_video_tokens) == (0, 0)


def test_kwargs_positional_inputs_and_generation_config(qwen_pair, video_inputs):
    from transformers import GenerationConfig

    target, draft = qwen_pair
    inputs = dict(video_inputs(num_frames=4))
    input_ids = inputs.pop("input_ids")
    generation_config = GenerationConfig(max_new_tokens=9, do_sample=False, eos_token_id=None)
    ref = target.generate(input_ids, generation_config, **inputs)
    out = target.generate(input_ids, generation_config, **inputs, assistant_model=draft,
                          video_pruning=PruneConfig(keep_ratio=0.3).to_dict())
    assert_same_tokens(out, ref)


@pytest.mark.parametrize(
    "target_vocab, draft_vocab, emit",
    [(151936, 152064, "words"), (152064, 151936, "padding_row"), (152064, 152064, "words")],
    ids=["draft_vocab_larger", "target_emits_ids_the_draft_cannot_embed", "same_vocab"],
)
def test_vocabulary_padding_both_ways(video_inputs, target_vocab, draft_vocab, emit):
    from specvlm_hf.testbed import tiny

    target, draft = tiny.build_tiny_pair("qwen2_5_vl", seed=4, target_vocab=target_vocab, draft_vocab=draft_vocab)
    inputs = video_inputs(num_frames=4)
    if emit == "padding_row":
        # Make the target emit an id from its padding rows, which the draft cannot embed: copy the row of its most
        # frequent output token there, amplified.
        plain = target.generate(**inputs, max_new_tokens=16)[0, inputs["input_ids"].shape[1]:]
        frequent = int(plain.mode().values)
        with torch.no_grad():
            target.lm_head.weight[152000] = target.lm_head.weight[frequent] * 1.5
    ref = target.generate(**inputs, max_new_tokens=16)
    if emit == "padding_row":
        assert bool((ref[0, inputs["input_ids"].shape[1]:] >= draft_vocab).any()), "the test must exercise the case"
    out = target.generate(**inputs, max_new_tokens=16, assistant_model=draft, video_pruning=PruneConfig())
    assert_same_tokens(out, ref)


def test_video_file_read_with_pyav(qwen_pair, qwen_processor, tmp_path):
    """A small .mp4 written and read back with PyAV (transformers' own `load_video` backend), end to end."""
    from transformers.video_utils import load_video

    from specvlm_hf.testbed import tiny

    target, draft = qwen_pair
    path = tiny.write_video_file(tmp_path / "clip.mp4", tiny.make_video(num_frames=6, height=64, width=64, seed=2))
    frames, metadata = load_video(str(path), backend="pyav")
    assert frames.shape[0] == 6
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Describe the video."}]}]
    prompt = qwen_processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = qwen_processor(text=[prompt], videos=[frames], video_metadata=[metadata], return_tensors="pt")
    ref = target.generate(**inputs, max_new_tokens=10)
    out = target.generate(**inputs, max_new_tokens=10, assistant_model=draft, video_pruning=PruneConfig())
    assert_same_tokens(out, ref)

"""Speculative sampling with `video_pruning` samples from the target's distribution.

Over a fixed set of seeds, the distribution of the first drafted token (the 2nd generated one; the 1st comes from
the target's prefill) matches target-only sampling within a stated total-variation tolerance, and the SAME test at
the SAME sample size fails for a deliberately wrong variant that returns the unprocessed draft logits instead of
the processed distribution it sampled from — proof that the test has power.
"""

from __future__ import annotations

import collections
import copy

import pytest
import torch

from specvlm_hf import PruneConfig, last_stats
from specvlm_hf.candidate import PrunedVideoCandidateGenerator
from specvlm_hf.testbed import tiny

SAMPLES = 600
# Two-sample TV between 600 draws of a ~13-outcome distribution is ~0.03-0.05 under the null; the wrong variant
# (returned logits != sampling distribution) distorts acceptance by ~0.15.
TOLERANCE = 0.08
OPTIONS = {"do_sample": True, "temperature": 3.0, "top_k": 4, "max_new_tokens": 3}


@pytest.fixture(scope="module")
def sampling_setup():
    # Moderate logits so the processed distribution has real entropy; an exact copy as draft maximises how much
    # the output depends on the candidate logits (every draft proposal is plausible).
    target = tiny.build_tiny_model("qwen2_5_vl", "target", logit_std=4.0, seed=0)
    draft = copy.deepcopy(target)
    processor = tiny.build_processor("qwen2_5_vl")
    inputs = tiny.make_inputs(processor, video=tiny.make_video(num_frames=2, height=56, width=56))
    return target, draft, inputs


def first_drafted_token_counts(target, inputs, **kwargs) -> collections.Counter:
    prompt_length = inputs["input_ids"].shape[1]
    counts = collections.Counter()
    for seed in range(SAMPLES):
        torch.manual_seed(seed)
        out = target.generate(**inputs, **OPTIONS, **kwargs)
        counts[int(out[0, prompt_length + 1])] += 1
    return counts


def total_variation(a: collections.Counter, b: collections.Counter) -> float:
    return 0.5 * sum(abs(a[key] - b[key]) for key in set(a) | set(b)) / SAMPLES


def returns_unprocessed_logits(monkeypatch):
    """The wrong variant: sample from the processed distribution but return the raw draft logits."""
    original = PrunedVideoCandidateGenerator._draft

    def wrong(self, input_ids, budget):
        raw = []
        to_target_vocab = self._to_target_vocab

        def record(logits):
            raw.append(to_target_vocab(logits))
            return raw[-1]

        self._to_target_vocab = record
        try:
            sequence, logits = original(self, input_ids, budget)
        finally:
            del self._to_target_vocab
        return sequence, torch.stack(raw, dim=1) if raw else logits

    monkeypatch.setattr(PrunedVideoCandidateGenerator, "_draft", wrong)


def test_sampled_distribution_matches_target_and_test_has_power(sampling_setup, monkeypatch):
    target, draft, inputs = sampling_setup
    config = PruneConfig(keep_ratio=0.5, num_draft_tokens=3)
    reference = first_drafted_token_counts(target, inputs)
    assert len(reference) >= 5, "the target distribution must have real entropy for this test to mean anything"

    speculative = first_drafted_token_counts(target, inputs, assistant_model=draft, video_pruning=config)
    assert last_stats(target).drafted >= 1  # the 2nd token really went through draft + speculative sampling
    assert total_variation(reference, speculative) <= TOLERANCE

    returns_unprocessed_logits(monkeypatch)
    wrong = first_drafted_token_counts(target, inputs, assistant_model=draft, video_pruning=config)
    assert total_variation(reference, wrong) > TOLERANCE

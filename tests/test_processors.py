"""The draft applies the target's logits processors to every token it drafts: with an exact copy of the target as
draft, processor-shaped outputs are still accepted (nearly) in full, and the output equals the target alone."""

from __future__ import annotations

import pytest
import torch
from transformers import LogitsProcessor, LogitsProcessorList

from specvlm_hf import PruneConfig, last_stats


class BanEveryThirdStep(LogitsProcessor):
    """A user processor whose effect depends on the sequence length (so drafted positions must be processed)."""

    def __call__(self, input_ids, scores):
        if input_ids.shape[1] % 3 == 0:
            scores = scores.clone()
            scores[:, scores.argmax(dim=-1)] = float("-inf")
        return scores


@pytest.mark.parametrize(
    "options",
    [
        {"repetition_penalty": 3.0},
        {"no_repeat_ngram_size": 1},
        {"logits_processor": LogitsProcessorList([BanEveryThirdStep()])},
    ],
    ids=["repetition_penalty", "no_repeat_ngram_size", "custom_processor"],
)
def test_processors_apply_to_drafted_tokens(qwen_pair, qwen_self_draft, video_inputs, options):
    target, _ = qwen_pair
    inputs = video_inputs(num_frames=4, height=84, width=84)
    ref = target.generate(**inputs, max_new_tokens=24, **options)
    plain = target.generate(**inputs, max_new_tokens=24)
    assert not torch.equal(ref, plain), "the processor must change the output for this test to have power"
    out = target.generate(**inputs, max_new_tokens=24, assistant_model=qwen_self_draft,
                          video_pruning=PruneConfig(keep_ratio=1.0, num_draft_tokens=4), **options)
    assert torch.equal(out, ref)
    assert last_stats(target).acceptance_rate >= 0.99

"""Shared fixtures: tiny random Qwen2.5-VL pairs built once per session (real special-token ids and vocab sizes,
lm_head scaled for large greedy margins — docs/design.md §4) and the real processor from a locally made tokenizer."""

from __future__ import annotations

import copy

import pytest
import torch

import specvlm_hf  # noqa: F401  (registers the kwarg)

# One thread: the tiny models are overhead-bound, and two threads on a loaded 2-core machine are ~10x slower.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def qwen_pair():
    """(target, draft): draft smaller, own vision tower, padded-vocab sibling (152064 vs 151936)."""
    from specvlm_hf.testbed import tiny

    return tiny.build_tiny_pair("qwen2_5_vl", seed=0)


@pytest.fixture(scope="session")
def qwen_processor():
    from specvlm_hf.testbed import tiny

    return tiny.build_processor("qwen2_5_vl")


@pytest.fixture(scope="session")
def qwen_self_draft(qwen_pair):
    """An exact copy of the target: self-speculation at keep 1.0 must accept (nearly) every draft."""
    return copy.deepcopy(qwen_pair[0])


@pytest.fixture()
def video_inputs(qwen_processor):
    from specvlm_hf.testbed import tiny

    def make(**kwargs):
        video_kwargs = {k: kwargs.pop(k) for k in ("num_frames", "height", "width", "seed") if k in kwargs}
        return tiny.make_inputs(qwen_processor, video=tiny.make_video(**video_kwargs), **kwargs)

    return make

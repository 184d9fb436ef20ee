"""The attention-free scorer (``PruneConfig(scorer="similarity")``): its scores equal an independent reference built
from ``output_hidden_states``, it needs no attention weights (so it runs on any attention kernel, where the verifier
scorer is refused), it is lossless, and it leaves the target exactly as it was (hooks removed, also after an
exception)."""

from __future__ import annotations

import copy

import pytest
import torch
from model_state import assert_same_snapshot, snapshot
from torch.profiler import ProfilerActivity, profile
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface
from transformers.modeling_utils import AttentionInterface

import specvlm_hf
import specvlm_hf.candidate as candidate_module
from specvlm_hf import PruneConfig
from specvlm_hf.capture import centred_similarity
from specvlm_hf.pruning import select_video_tokens

VIDEO, IMAGE = 151656, 151655


def reference_scores(model, inputs, layers):
    """Centred cosine of each video token's hidden state to the mean query hidden state, from output_hidden_states
    (hidden_states[i + 1] is decoder layer i's output for every layer but the last, which transformers normalises)."""
    with torch.no_grad():
        hidden = model(**inputs, output_hidden_states=True).hidden_states
    prompt = inputs["input_ids"][0].tolist()
    video = [i for i, t in enumerate(prompt) if t == VIDEO]
    queries = [i for i in range(video[-1] + 1, len(prompt)) if prompt[i] not in (VIDEO, IMAGE)]
    per_layer = []
    for layer in layers:
        states = hidden[layer + 1][0].double()
        centre = states[video].mean(dim=0)
        query = states[queries].mean(dim=0) - centre
        scores = [max(0.0, float(torch.dot(states[i] - centre, query) / ((states[i] - centre).norm() * query.norm())))
                  for i in video]
        per_layer.append(torch.tensor(scores, dtype=torch.float64))
    mean = torch.stack(per_layer).mean(0)
    return mean / mean.sum()


def test_centred_similarity_matches_a_loop():
    generator = torch.Generator().manual_seed(0)
    video, query = torch.randn(30, 8, generator=generator), torch.randn(4, 8, generator=generator)
    got = centred_similarity(video, query)
    centre = video.mean(0)
    direction = query.mean(0) - centre
    expected = [max(0.0, float(torch.nn.functional.cosine_similarity(v - centre, direction, dim=0))) for v in video]
    torch.testing.assert_close(got, torch.tensor(expected), atol=1e-6, rtol=1e-5)
    assert (got >= 0).all() and got.dtype == torch.float32
    # A token pointing away from the query (after centring) scores 0; one along it scores 1.
    video = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 0.0]])
    assert centred_similarity(video, torch.tensor([[2.0, 0.0]])).tolist() == [1.0, 0.0, 0.0]


def test_similarity_costs_n_times_d():
    n, d, n_query = 20_000, 64, 32
    video, query = torch.randn(n, d), torch.randn(n_query, d)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = centred_similarity(video, query)
    assert out.shape == (n,)
    largest = max(event.cpu_memory_usage for event in prof.events())
    assert 0 < largest <= n * d * 4 * 1.01  # one centred copy of the video states; never N x N or N x n_query x d


@pytest.fixture()
def selections(monkeypatch):
    """Every (scores, kept indices) the candidate generator's selection produces while the test runs."""
    seen = []
    original = candidate_module.select_video_tokens

    def spy(scores, *args, **kwargs):
        kept = original(scores, *args, **kwargs)
        seen.append((scores.clone(), kept))
        return kept

    monkeypatch.setattr(candidate_module, "select_video_tokens", spy)
    return seen


def test_similarity_scores_inside_generate_match_the_reference(qwen_pair, video_inputs, selections):
    target, draft = qwen_pair
    inputs = video_inputs(num_frames=4, height=56, width=56)
    config = PruneConfig(keep_ratio=0.2, scorer="similarity", layers=[0, 1])
    target.generate(**inputs, max_new_tokens=3, do_sample=False, assistant_model=draft, video_pruning=config)
    assert len(selections) == 1
    scores = selections[0][0].double()
    torch.testing.assert_close(scores, reference_scores(target, inputs, [0, 1]), atol=1e-5, rtol=1e-4)
    assert specvlm_hf.last_stats(target).capture_s > 0


@pytest.fixture()
def other_kernel_target(qwen_pair):
    """A copy of the target whose language model runs an attention kernel that is neither sdpa nor eager (a stand-in
    for flash-attention, which needs a GPU): registered like a third-party kernel, computing sdpa underneath."""
    name = "kernel_under_test"
    AttentionInterface.register(name, sdpa_attention_forward)
    AttentionMaskInterface.register(name, ALL_MASK_ATTENTION_FUNCTIONS._global_mapping["sdpa"])
    model = copy.deepcopy(qwen_pair[0])
    model.get_decoder().config._attn_implementation_internal = name
    try:
        yield model
    finally:
        AttentionInterface._global_mapping.pop(name, None)
        AttentionMaskInterface._global_mapping.pop(name, None)


def test_similarity_runs_where_the_attention_capture_cannot(other_kernel_target, qwen_pair, video_inputs):
    target, (_, draft) = other_kernel_target, qwen_pair
    inputs = video_inputs(num_frames=4, height=56, width=84)
    with pytest.raises(ValueError, match="scorer='similarity'"):
        target.generate(**inputs, max_new_tokens=4, assistant_model=draft, video_pruning=PruneConfig())
    reference = target.generate(**inputs, max_new_tokens=12, do_sample=False)
    before = snapshot(target)
    for keep in (0.1, 0.5):
        out = target.generate(**inputs, max_new_tokens=12, do_sample=False, assistant_model=draft,
                              video_pruning=PruneConfig(keep_ratio=keep, scorer="similarity"))
        assert out.tolist() == reference.tolist()
        stats = specvlm_hf.last_stats(target)
        assert stats.kept_video_tokens == max(1, int(stats.video_tokens * keep))
    assert_same_snapshot(before, snapshot(target))
    assert target.get_decoder().config._attn_implementation == "kernel_under_test"


def test_similarity_hooks_are_removed_after_an_exception(qwen_pair, video_inputs):
    target, draft = qwen_pair
    inputs = video_inputs(num_frames=4, height=56, width=56)
    before = snapshot(target)

    def explode(module, args, output):
        raise RuntimeError("boom")

    handle = target.get_decoder().layers[-1].register_forward_hook(explode)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            target.generate(**inputs, max_new_tokens=4, assistant_model=draft,
                            video_pruning=PruneConfig(scorer="similarity"))
    finally:
        handle.remove()
    assert_same_snapshot(before, snapshot(target), skip=("rope_deltas",))  # as tests/test_bad_input.py


def test_similarity_selection_follows_the_scores(qwen_pair, video_inputs, selections):
    """The draft keeps what the similarity scores select under the default rule (not a blind spread)."""
    target, draft = qwen_pair
    inputs = video_inputs(num_frames=4, height=56, width=56)
    target.generate(**inputs, max_new_tokens=3, do_sample=False, assistant_model=draft,
                    video_pruning=PruneConfig(keep_ratio=0.25, scorer="similarity"))
    scores, kept = selections[0]
    assert kept.tolist() == select_video_tokens(scores, 0.25, scorer="similarity").tolist()
    assert int(torch.argmax(scores)) in kept.tolist()  # Stage I keeps the top-scored token
    assert specvlm_hf.last_stats(target).kept_video_tokens == kept.numel()

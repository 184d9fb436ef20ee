"""The verifier attention capture equals an independent eager `output_attentions` reference, and costs
O(n_query x L): it never allocates an L x L tensor."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

import specvlm_hf.candidate as candidate_module
import specvlm_hf.capture as capture_module
from specvlm_hf import PruneConfig
from specvlm_hf.capture import query_positions, video_attention_rows, video_attention_scores

VIDEO, IMAGE = 151656, 151655


def eager_reference(model, inputs, layers=None):
    """Query-to-video attention from eager `output_attentions=True`: independent of the capture code."""
    eager = copy.deepcopy(model)
    eager.set_attn_implementation("eager")
    with torch.no_grad():
        out = eager(**{k: v for k, v in inputs.items()}, output_attentions=True)
    prompt = inputs["input_ids"][0]
    video = (prompt == VIDEO).nonzero().squeeze(1)
    last_video = int(video[-1])
    queries = [i for i in range(prompt.numel()) if i > last_video and int(prompt[i]) not in (VIDEO, IMAGE)]
    layers = range(len(out.attentions)) if layers is None else layers
    per_layer = [out.attentions[layer][0][:, queries][:, :, video].mean(dim=(0, 1)) for layer in layers]
    mean = torch.stack(per_layer).mean(0)
    return mean / mean.sum()


@pytest.mark.parametrize("question_first", [False, True])
def test_capture_matches_eager_reference_while_target_runs_sdpa(qwen_pair, video_inputs, question_first):
    target, _ = qwen_pair
    assert target.get_decoder().config._attn_implementation == "sdpa"
    inputs = video_inputs(num_frames=4, height=56, width=84, question_first=question_first)
    scores = video_attention_scores(target, video_token_id=VIDEO, placeholder_ids=[IMAGE], **inputs)
    reference = eager_reference(target, inputs)
    assert scores.shape == reference.shape
    torch.testing.assert_close(scores, reference, atol=1e-5, rtol=1e-4)
    assert abs(float(scores.sum()) - 1.0) < 1e-5  # renormalised over the video tokens


def test_capture_inside_generate_feeds_selection(qwen_pair, video_inputs, monkeypatch):
    """The scores generate() hands to the selection equal the eager reference over the chosen layers."""
    target, draft = qwen_pair
    inputs = video_inputs(num_frames=4, height=56, width=56)
    seen = []
    original = candidate_module.select_video_tokens

    def spy(scores, *args, **kwargs):
        seen.append(scores.clone())
        return original(scores, *args, **kwargs)

    monkeypatch.setattr(candidate_module, "select_video_tokens", spy)
    target.generate(**inputs, max_new_tokens=3, do_sample=False, assistant_model=draft,
                    video_pruning=PruneConfig(keep_ratio=0.2, layers=[0, -1]))
    num_layers = target.config.get_text_config().num_hidden_layers
    reference = eager_reference(target, inputs, layers=[0, num_layers - 1])
    assert len(seen) == 1
    torch.testing.assert_close(seen[0], reference, atol=1e-5, rtol=1e-4)


def test_query_rule():
    prompt = torch.tensor([1, 2, VIDEO, VIDEO, 3, IMAGE, 4, VIDEO, 5, 6])
    assert query_positions(prompt, [VIDEO, IMAGE]).tolist() == [8, 9]
    ends_on_video = torch.tensor([1, VIDEO, VIDEO])
    assert query_positions(ends_on_video, [VIDEO]).tolist() == [2]


def test_side_computation_never_allocates_l_by_l():
    length, heads, kv_heads, dim, n_query = 4096, 8, 2, 16, 24
    query = torch.randn(1, heads, length, dim)
    key = torch.randn(1, kv_heads, length, dim)
    rows = torch.arange(length - n_query, length)
    video = torch.arange(100, 3000)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = video_attention_rows(query, key, None, dim**-0.5, rows, video)
    assert out.shape == (video.numel(),)
    largest = max(event.cpu_memory_usage for event in prof.events())
    square = length * length * 4
    # The largest legitimate buffer is heads x n_query x L floats (~3 MB here); L x L floats would be 64 MB.
    assert 0 < largest <= heads * n_query * length * 4 * 1.01
    assert largest < square / 16


def peak_bytes(function) -> int:
    """Peak of the CPU memory the call allocates (running sum of the profiler's allocations and frees, in order)."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        function()
    running = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        running += event.self_cpu_memory_usage
        peak = max(peak, running)
    return peak


def test_chunked_side_computation_bounds_the_peak_and_keeps_the_scores():
    length, heads, kv_heads, dim, n_query = 4096, 8, 2, 16, 24
    torch.manual_seed(0)
    query, key = torch.randn(1, heads, length, dim), torch.randn(1, kv_heads, length, dim)
    rows = torch.arange(length - n_query, length)
    video = torch.arange(100, 3000)
    mask = torch.ones(1, 1, length, length, dtype=torch.bool).tril()
    chunk = 2 * heads * length  # two query rows per chunk: 12 chunks
    for attention_mask in (None, mask, torch.zeros(1, 1, length, length).masked_fill_(~mask, float("-inf"))):
        whole = video_attention_rows(query, key, attention_mask, dim**-0.5, rows, video, max_chunk_floats=1 << 40)
        chunked = video_attention_rows(query, key, attention_mask, dim**-0.5, rows, video, max_chunk_floats=chunk)
        torch.testing.assert_close(chunked, whole, atol=1e-7, rtol=1e-5)
    # The bound of the docstring: one chunk's logits, its video probabilities and its mask rows, plus the key positions
    # and small vectors.
    bound = 4 * (chunk + heads * 2 * video.numel()) + 2 * 2 * length + 8 * length + 16 * 1024
    assert peak_bytes(lambda: video_attention_rows(query, key, None, dim**-0.5, rows, video,
                                                   max_chunk_floats=chunk)) <= bound
    # Power: all 24 query rows at once need more than that.
    assert peak_bytes(lambda: video_attention_rows(query, key, None, dim**-0.5, rows, video,
                                                   max_chunk_floats=1 << 40)) > 4 * bound


@pytest.mark.parametrize("question_first", [False, True])
def test_capture_in_many_small_chunks_matches_eager_reference(qwen_pair, video_inputs, question_first, monkeypatch):
    """One query row per chunk (the smallest chunk) inside a real prefill: the scores still equal eager's."""
    target, _ = qwen_pair
    monkeypatch.setattr(capture_module, "CAPTURE_CHUNK_FLOATS", 1)
    inputs = video_inputs(num_frames=4, height=56, width=84, question_first=question_first)
    calls = []
    original = capture_module.video_attention_rows

    def spy(*args, **kwargs):
        calls.append(args[4].numel())
        return original(*args, **kwargs)

    monkeypatch.setattr(capture_module, "video_attention_rows", spy)
    scores = video_attention_scores(target, video_token_id=VIDEO, placeholder_ids=[IMAGE], **inputs)
    assert calls and min(calls) > 1  # several query rows per layer, hence several chunks each
    torch.testing.assert_close(scores, eager_reference(target, inputs), atol=1e-5, rtol=1e-4)

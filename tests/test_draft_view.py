"""The draft really sees its own pruned video (lossless tests alone would pass with a blind draft), and the
pruned prefill with original positions equals the full prompt with the pruned keys masked out."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers.generation.utils import _slice_mm_encoder_output

import specvlm_hf.candidate as candidate_module
from specvlm_hf import PruneConfig, last_stats
from specvlm_hf.candidate import DraftPositions
from specvlm_hf.compat import CACHE_KEY, output_cache
from specvlm_hf.testbed import tiny

VIDEO = 151656


def spy_selection(monkeypatch):
    kept = []
    original = candidate_module.select_video_tokens

    def spy(*args, **kwargs):
        kept.append(original(*args, **kwargs))
        return kept[-1]

    monkeypatch.setattr(candidate_module, "select_video_tokens", spy)
    return kept


@pytest.mark.parametrize("scorer", ["verifier", "uniform"])
def test_draft_prefill_embeddings_are_its_own_tower_at_kept_rows(qwen_pair, video_inputs, monkeypatch, scorer):
    target, draft = qwen_pair
    inputs = video_inputs(num_frames=4, height=84, width=84)
    kept = spy_selection(monkeypatch)
    captured = []

    def grab(module, args, kwargs):
        if not captured:
            captured.append(kwargs["inputs_embeds"].detach().clone())

    handle = draft.model.language_model.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        target.generate(**inputs, max_new_tokens=4, assistant_model=draft,
                        video_pruning=PruneConfig(keep_ratio=0.2, scorer=scorer))
    finally:
        handle.remove()

    prompt = inputs["input_ids"][0]
    video_positions = (prompt == VIDEO).nonzero().squeeze(1)
    keep_mask = prompt != VIDEO
    keep_mask[video_positions[kept[0]]] = True
    with torch.no_grad():
        expected = draft.get_input_embeddings()(prompt[keep_mask]).clone()
        features = draft.get_video_features(inputs["pixel_values_videos"], inputs["video_grid_thw"],
                                            return_dict=True).pooler_output
        expected[prompt[keep_mask] == VIDEO] = torch.cat(features)[kept[0]]
    # The draft's prefill is the pruned prompt followed by the target's first generated token.
    kept_length = int(keep_mask.sum())
    assert captured[0].shape[1] == kept_length + 1 and kept_length < prompt.numel()
    torch.testing.assert_close(captured[0][0, :kept_length], expected, atol=1e-5, rtol=1e-5)


def test_perturbed_draft_tower_lowers_acceptance(qwen_pair, qwen_self_draft, video_inputs):
    target, _ = qwen_pair
    inputs = video_inputs(num_frames=4, height=84, width=84)
    config = PruneConfig(keep_ratio=1.0, num_draft_tokens=4)
    target.generate(**inputs, max_new_tokens=24, assistant_model=qwen_self_draft, video_pruning=config)
    clean = last_stats(target).acceptance_rate
    assert clean >= 0.99

    blind = copy.deepcopy(qwen_self_draft)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in blind.model.visual.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 2.0)
    out = target.generate(**inputs, max_new_tokens=24, assistant_model=blind, video_pruning=config)
    assert torch.equal(out, target.generate(**inputs, max_new_tokens=24))
    assert last_stats(target).acceptance_rate < clean - 0.2


def full_prompt_positions(model, inputs):
    """4-row position ids (text row + M-RoPE) as generate builds them, from the model's own rope index."""
    rope, _ = model.model.get_rope_index(
        inputs["input_ids"], mm_token_type_ids=inputs["mm_token_type_ids"],
        video_grid_thw=inputs["video_grid_thw"], second_per_grid_ts=inputs["second_per_grid_ts"],
    )
    text = torch.arange(inputs["input_ids"].shape[1])[None, None]
    return torch.cat([text, rope], dim=0)


def test_original_positions_equal_masking_the_pruned_keys(video_inputs):
    model = tiny.build_tiny_model("qwen2_5_vl", "draft", logit_std=1.0, seed=3)
    inputs = video_inputs(num_frames=4, height=84, width=84, question_first=False)
    ids = inputs["input_ids"]
    prompt = ids[0]
    length = prompt.numel()
    video_positions = (prompt == VIDEO).nonzero().squeeze(1)
    kept_rows = torch.arange(0, video_positions.numel(), 3)
    keep_mask = prompt != VIDEO
    keep_mask[video_positions[kept_rows]] = True
    positions = full_prompt_positions(model, inputs)
    draft_positions = DraftPositions(positions, keep_mask, "original")
    next_token = torch.tensor([[42]])

    with torch.no_grad():
        features = model.get_video_features(inputs["pixel_values_videos"], inputs["video_grid_thw"], return_dict=True)
        pruned = model(input_ids=ids[:, keep_mask], position_ids=draft_positions.prompt(), use_cache=True,
                       mm_encoder_outputs={"video": _slice_mm_encoder_output(features, kept_rows)})
        pruned_next = model(input_ids=next_token, position_ids=draft_positions.generated(length, 1),
                            use_cache=True, **{CACHE_KEY: output_cache(pruned)})

        # Reference: the whole prompt, pruned keys masked out of every kept query row by a 4-D mask.
        causal = torch.tril(torch.ones(length, length, dtype=torch.bool))
        mask = causal & keep_mask[None, :]
        mask |= torch.eye(length, dtype=torch.bool)  # pruned rows attend to themselves only (never read)
        full = model(input_ids=ids, position_ids=positions, attention_mask=mask[None, None], use_cache=True,
                     mm_encoder_outputs={"video": features})
        next_positions = positions[..., -1:] + 1
        next_mask = torch.cat([keep_mask, torch.tensor([True])])[None, None, None, :]
        full_next = model(input_ids=next_token, position_ids=next_positions, attention_mask=next_mask,
                          use_cache=True, **{CACHE_KEY: output_cache(full)})

    prompt_delta = (pruned.logits[0] - full.logits[0, keep_mask]).abs().max()
    next_delta = (pruned_next.logits - full_next.logits).abs().max()
    assert prompt_delta < 1e-4 and next_delta < 1e-4, (prompt_delta, next_delta)


def test_draft_positions_rules():
    rows = torch.stack([torch.arange(8), torch.tensor([0, 1, 2, 2, 2, 2, 5, 6]),
                        torch.tensor([0, 1, 2, 2, 3, 3, 5, 6]), torch.tensor([0, 1, 2, 3, 2, 3, 5, 6])])[:, None]
    keep = torch.tensor([True, True, False, True, False, True, True, True])
    original = DraftPositions(rows, keep, "original")
    assert original.prompt()[0, 0].tolist() == list(range(6))  # text row contiguous
    assert original.prompt()[1:, 0].tolist() == rows[1:, 0][:, keep].tolist()
    assert original.generated(8, 2)[:, 0].tolist() == [[6, 7], [7, 8], [7, 8], [7, 8]]
    compact = DraftPositions(rows, keep, "compact")
    assert compact.prompt()[:, 0].tolist() == [list(range(6))] * 4
    assert compact.generated(8, 2)[:, 0].tolist() == [[6, 7]] * 4
    one_d = DraftPositions(torch.arange(8)[None], keep, "original")
    assert one_d.prompt().tolist() == [[0, 1, 3, 5, 6, 7]] and one_d.generated(8, 1).tolist() == [[8]]

"""Fast tests of the trained testbed: data, processor path, committed weights and a gate re-check."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from specvlm_hf.testbed.synthetic import COLOURS, FRAME_SIZE, make_sample, recover_facts, shape_mask
from specvlm_hf.testbed.train import SLOTS, chance_levels, chat_text, eval_samples, evaluate, make_batch
from specvlm_hf.testbed.vocab import build_processor, chat_messages, special_token_ids

WEIGHTS = Path(os.environ.get("SPECVLM_TESTBED_WEIGHTS", Path(__file__).resolve().parents[1] / "weights"))


@pytest.fixture(scope="module")
def processor():
    return build_processor()


def test_generator_is_deterministic():
    a, b = make_sample(123), make_sample(123)
    assert np.array_equal(a.frames, b.frames)
    assert a.caption == b.caption and a.prompt == b.prompt
    assert not np.array_equal(make_sample(124).frames, a.frames) or make_sample(124).caption != a.caption


@pytest.mark.parametrize("seed", range(40))
def test_caption_facts_recomputable_from_frames(seed):
    s = make_sample(seed)
    facts = recover_facts(s.frames)
    assert len(facts) == len(s.objects)
    count_word = s.words[s.slots.index("count")]
    assert count_word == ("one", "two")[len(facts) - 1]
    # Each object's words appear in caption order, tagged by slot.
    per_object = [dict() for _ in facts]
    k = -1
    for word, slot in zip(s.words, s.slots):
        if slot == "colour":
            k += 1
        if slot in ("colour", "shape", "row", "col"):
            per_object[k][slot] = word
        elif slot == "motion" and word not in ("moves", "stays"):
            per_object[k]["motion"] = word
    for want, got in zip(per_object, facts):
        assert want == {key: got[key] for key in want}


def test_objects_cover_a_small_share_of_tokens():
    from specvlm_hf.testbed.train import object_token_mask

    shares = [float(object_token_mask(make_sample(i)).float().mean()) for i in range(60)]
    # One object = 2x2 of 36 merged tokens per temporal patch (11%), two objects 22%.
    assert min(shares) >= 0.1 and max(shares) <= 0.23
    assert 0.12 <= float(np.mean(shares)) <= 0.2
    assert all(shape_mask(name).shape == (32, 32) for name in ("square", "ring", "cross", "triangle"))
    assert len(COLOURS) >= 4 and FRAME_SIZE == 96


def test_processor_path(processor):
    s = make_sample(7)
    text = processor.apply_chat_template(chat_messages(s.prompt), add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_start|>assistant\n")
    inputs = processor(text=[text], videos=[s.frames], return_tensors="pt")
    ids = special_token_ids(processor.tokenizer)
    assert inputs["video_grid_thw"].tolist() == [[4, 12, 12]]
    assert int((inputs["input_ids"] == ids["video_token_id"]).sum()) == 144
    assert inputs["pixel_values_videos"].shape == (4 * 12 * 12, 3 * 2 * 8 * 8)
    # Word-level: one caption word is one token, and decoding gives the caption back.
    caption_ids = processor.tokenizer(s.caption, add_special_tokens=False).input_ids
    assert len(caption_ids) == len(s.words)
    assert processor.tokenizer.decode(caption_ids) == s.caption
    assert processor.tokenizer.unk_token_id not in caption_ids


def test_batch_labels_cover_caption_only(processor):
    samples = [make_sample(i) for i in range(3)]
    batch = make_batch(processor, samples)
    for i, s in enumerate(samples):
        assert int((batch["labels"][i] != -100).sum()) == len(s.words) + 1
        assert int((batch["slot_ids"][i] >= 0).sum()) == sum(t is not None for t in s.slots)


def _load_pair():
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    target_dir, draft_dir = WEIGHTS / "testbed-target", WEIGHTS / "testbed-draft"
    if not (target_dir / "model.safetensors").exists() or not (draft_dir / "model.safetensors").exists():
        pytest.skip("trained testbed weights not present")
    target = Qwen2_5_VLForConditionalGeneration.from_pretrained(target_dir, dtype=torch.float32).eval()
    draft = Qwen2_5_VLForConditionalGeneration.from_pretrained(draft_dir, dtype=torch.float32).eval()
    return target, draft, AutoProcessor.from_pretrained(target_dir)


def test_committed_pair_loads_and_is_compatible():
    target, draft, proc = _load_pair()
    assert target.config.video_token_id == draft.config.video_token_id
    assert target.config.vision_config.patch_size == proc.video_processor.patch_size
    assert target.config.text_config.num_hidden_layers > draft.config.text_config.num_hidden_layers
    assert sum(f.stat().st_size for f in WEIGHTS.rglob("*.safetensors")) <= 16 * 2**20
    for d in ("testbed-target", "testbed-draft"):
        assert "exact_match" in (WEIGHTS / d / "README.md").read_text()


def test_gates_on_small_held_out_set():
    target, draft, proc = _load_pair()
    batches = [make_batch(proc, eval_samples(7, 8)[i : i + 4]) for i in (0, 4)]
    with torch.no_grad():
        t = evaluate(target, batches)
        d = evaluate(draft, batches, reference=target)
    chance = chance_levels()
    for slot in SLOTS:
        assert t[slot] >= 0.8, (slot, t)
        assert t[slot] > chance[slot]
    assert d["top1_agreement"] >= 0.5
    # Greedy generation through the processor path reproduces a held-out caption.
    s = eval_samples(7, 1)[0]
    inputs = proc(text=[chat_text(proc, s, with_caption=False)], videos=[s.frames], return_tensors="pt")
    out = target.generate(**inputs, max_new_tokens=48, do_sample=False)
    text = proc.tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert text.split() == list(s.words) or t["exact_match"] < 1.0

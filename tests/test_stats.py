"""`last_stats` follows the counting rules of docs/design.md §6."""

from __future__ import annotations

import copy

import pytest
import torch

from specvlm_hf import PruneConfig, SpecStats, last_stats


@pytest.mark.parametrize("gamma, max_new_tokens", [(1, 9), (3, 17), (5, 30), (8, 4)])
def test_counting_rules_hold(qwen_pair, qwen_self_draft, video_inputs, gamma, max_new_tokens):
    target, draft = qwen_pair
    inputs = video_inputs(num_frames=4, height=84, width=56)
    for assistant in (draft, qwen_self_draft):
        out = target.generate(**inputs, max_new_tokens=max_new_tokens, assistant_model=assistant,
                              video_pruning=PruneConfig(keep_ratio=0.5, num_draft_tokens=gamma))
        stats = last_stats(target)
        new_tokens = out.shape[1] - inputs["input_ids"].shape[1]
        assert stats.new_tokens == new_tokens
        # Every verification round commits its accepted drafts plus one bonus token; the prefill commits one.
        assert new_tokens == 1 + stats.rounds + stats.accepted
        assert sum(stats.accept_histogram) == stats.rounds
        assert sum(i * n for i, n in enumerate(stats.accept_histogram)) == stats.accepted
        assert stats.drafted <= gamma * stats.rounds and stats.accepted <= stats.drafted
        assert stats.mean_accepted_length == pytest.approx((new_tokens - 1) / stats.rounds)
        assert stats.accepted_per_round == pytest.approx(stats.accepted / stats.rounds)
        assert stats.acceptance_rate == pytest.approx(stats.accepted / stats.drafted)
        assert stats.video_tokens == int((inputs["input_ids"] == 151656).sum())
        assert stats.kept_video_tokens == stats.video_tokens // 2
        for name in ("target_prefill_s", "capture_s", "draft_prefill_s", "draft_s", "verify_s", "overhead_s"):
            assert getattr(stats, name) >= 0.0, name
        assert stats.capture_s <= stats.target_prefill_s
        assert stats.draft_prefill_s > 0 and stats.draft_s > 0 and stats.verify_s > 0


def test_last_stats_is_per_model_and_not_an_attribute(qwen_pair, video_inputs):
    target, draft = qwen_pair
    other = copy.deepcopy(target)
    with pytest.raises(LookupError, match="video_pruning"):
        last_stats(other)
    attributes = set(vars(target))
    target.generate(**video_inputs(num_frames=2), max_new_tokens=3, assistant_model=draft,
                    video_pruning=PruneConfig())
    assert set(vars(target)) == attributes
    assert isinstance(last_stats(target), SpecStats)
    with pytest.raises(LookupError):
        last_stats(other)


def test_stats_dict_and_repr():
    stats = SpecStats(new_tokens=11, video_tokens=100, kept_video_tokens=10)
    for drafted, accepted in ((5, 5), (5, 2), (5, 0)):
        stats.record_round(drafted, accepted)
    stats.new_tokens = 1 + stats.rounds + stats.accepted
    data = stats.to_dict()
    assert data["accept_histogram"] == [1, 0, 1, 0, 0, 1]
    assert data["mean_accepted_length"] == pytest.approx((stats.new_tokens - 1) / 3)
    assert data["accepted_per_round"] == pytest.approx(7 / 3)
    assert data["acceptance_rate"] == pytest.approx(7 / 15)
    assert "tau=3.33" in repr(stats) and "10/100 kept" in repr(stats)
    assert SpecStats().mean_accepted_length == 0.0


def test_end_to_end_through_the_real_processor(qwen_pair, qwen_processor):
    """apply_chat_template with a video of frames -> processor -> generate with video_pruning -> decoded text."""
    from specvlm_hf.testbed import tiny

    target, draft = qwen_pair
    frames = tiny.make_video(num_frames=6, height=84, width=84, seed=5)
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "What moves?"}]}]
    prompt = qwen_processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert "<|vision_start|><|video_pad|><|vision_end|>What moves?<|im_end|>" in prompt
    inputs = qwen_processor(text=[prompt], videos=[frames], return_tensors="pt")
    ref = target.generate(**inputs, max_new_tokens=15)
    out = target.generate(**inputs, max_new_tokens=15, assistant_model=draft,
                          video_pruning=PruneConfig(keep_ratio=0.1))
    assert torch.equal(out, ref)
    text = qwen_processor.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)[0]
    assert isinstance(text, str) and text.strip()
    assert last_stats(target).kept_video_tokens == max(1, int(0.1 * last_stats(target).video_tokens))


class FakeEvent:
    """A device timing event: every event pair measures 2 ms."""

    def __init__(self, timeline: list, device):
        self.timeline, self.device, self.synchronized = timeline, device, False
        timeline.append(("record", self))

    def synchronize(self):
        self.synchronized = True
        self.timeline.append(("event sync", self))

    def elapsed_time(self, end):
        assert end.synchronized, "read before its end event completed"
        return 2.0


def test_timers_on_an_accelerator_synchronise_per_round_not_per_token(qwen_pair, video_inputs, monkeypatch):
    """On an accelerator the host only queues kernels. Pretending the CPU is one (fake events, a synchronisation
    spy): the per-round/per-call times synchronise exactly where they are recorded — once per verification round and
    once for the draft prefill — while the per-layer capture and the per-token draft steps use events, read once."""
    import specvlm_hf.candidate as candidate_module
    import specvlm_hf.stats as stats_module

    target, draft = qwen_pair
    timeline: list = []
    monkeypatch.setattr(stats_module, "_on_host", lambda device: False)
    monkeypatch.setattr(stats_module, "_recorded_event", lambda device: FakeEvent(timeline, device))
    monkeypatch.setattr(candidate_module, "synchronize", lambda device: timeline.append(("sync", device)))
    draft_forwards = []
    hook = draft.register_forward_pre_hook(lambda *args: draft_forwards.append(1))
    try:
        target.generate(**video_inputs(num_frames=4), max_new_tokens=12, do_sample=False, assistant_model=draft,
                        video_pruning=PruneConfig(keep_ratio=0.5, num_draft_tokens=4))
    finally:
        hook.remove()
    stats = last_stats(target)
    syncs = [entry for entry in timeline if entry[0] == "sync"]
    assert len(syncs) == stats.rounds + 2  # every strategy update (prefill + rounds) and the draft prefill
    decode_steps = len(draft_forwards) - 1  # the draft's forwards after its prefill
    assert decode_steps > len(syncs)  # so not one per token
    records = [entry[1] for entry in timeline if entry[0] == "record"]
    layers = target.config.get_text_config().num_hidden_layers
    assert len(records) == 2 * (layers + decode_steps)  # one event pair per captured layer and per draft step
    assert stats.capture_s == pytest.approx(layers * 0.002) and stats.draft_s == pytest.approx(decode_steps * 0.002)
    # Events are read once, after they were recorded: the capture's at the end of the prefill, the draft's at the end.
    event_syncs = [i for i, entry in enumerate(timeline) if entry[0] == "event sync"]
    assert len(event_syncs) == layers + decode_steps
    first_draft_record = next(i for i, entry in enumerate(timeline) if entry[0] == "record" and i > event_syncs[0])
    assert all(i > first_draft_record for i in event_syncs[layers:])

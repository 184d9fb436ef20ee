"""Concurrency and registration (issue 6): two threads generating at once with two different target/draft pairs
(the active call lives in a ContextVar and must not cross threads), a third thread running plain generate, and
`unregister()` restoring stock `generate` exactly, then `register()` again."""

from __future__ import annotations

import functools
import threading

import pytest
import torch
from transformers.generation.utils import GenerationMixin

import specvlm_hf
from specvlm_hf import PruneConfig, last_stats
from specvlm_hf.testbed import tiny


def patched_methods() -> dict:
    """GenerationMixin methods whose code lives in specvlm_hf (functools.wraps copies the stock names over)."""
    return {
        name: value for name, value in GenerationMixin.__dict__.items()
        if "specvlm_hf" in getattr(getattr(value, "__code__", None), "co_filename", "")
    }


@functools.cache
def family(model_type: str, seed: int = 0):
    target, draft = tiny.build_tiny_pair(model_type, seed=seed)
    return target, draft, tiny.build_processor(model_type)


def inputs_for(model_type: str, seed: int, frames: int = 4) -> dict:
    _, _, processor = family(model_type)
    return dict(tiny.make_inputs(processor, video=tiny.make_video(num_frames=frames, height=56, width=56, seed=seed)))


def run_threads(jobs, iterations: int) -> None:
    """Run every job `iterations` times, each in its own thread, all started together; re-raise the first error."""
    errors: list[BaseException] = []
    start = threading.Barrier(len(jobs))

    def worker(job):
        try:
            start.wait(timeout=60)
            for i in range(iterations):
                job(i)
        except BaseException as error:  # surfaced in the main thread
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads), "a generating thread hung"
    if errors:
        raise errors[0]


def test_two_threads_with_two_pairs_do_not_cross():
    """Thread A self-speculates at keep 1.0 (every draft accepted, all video tokens kept); thread B drafts with a
    different family's small draft keeping one token per video. If the active call crossed threads, B's settings or
    draft would show up in A's stats (or crash on the wrong family), and vice versa. A third thread runs plain
    generate on a third model, which must stay stock."""
    a_target, _, _ = family("qwen2_5_vl")
    b_target, b_draft, _ = family("llava_onevision")
    c_target, _, _ = family("qwen3_vl")
    a_inputs = [inputs_for("qwen2_5_vl", seed) for seed in (0, 1)]
    b_inputs = [inputs_for("llava_onevision", seed) for seed in (2, 3)]
    c_inputs = [inputs_for("qwen3_vl", seed) for seed in (4, 5)]
    a_refs = [a_target.generate(**x, max_new_tokens=12) for x in a_inputs]
    b_refs = [b_target.generate(**x, max_new_tokens=12) for x in b_inputs]
    c_refs = [c_target.generate(**x, max_new_tokens=12) for x in c_inputs]
    a_config = PruneConfig(keep_ratio=1.0, num_draft_tokens=3)
    b_config = PruneConfig(keep_ratio=0.001, num_draft_tokens=2)

    def job_a(i):
        out = a_target.generate(**a_inputs[i % 2], max_new_tokens=12, assistant_model=a_target, video_pruning=a_config)
        assert torch.equal(out, a_refs[i % 2]), f"A iteration {i}"
        stats = last_stats(a_target)
        assert stats.kept_video_tokens == stats.video_tokens > 1 and stats.acceptance_rate >= 0.99, stats
        assert len(stats.accept_histogram) - 1 <= 3

    def job_b(i):
        out = b_target.generate(**b_inputs[i % 2], max_new_tokens=12, assistant_model=b_draft, video_pruning=b_config)
        assert torch.equal(out, b_refs[i % 2]), f"B iteration {i}"
        stats = last_stats(b_target)
        assert stats.kept_video_tokens == 1 and stats.video_tokens > 1, stats
        assert len(stats.accept_histogram) - 1 <= 2

    def job_c(i):
        out = c_target.generate(**c_inputs[i % 2], max_new_tokens=12)
        assert torch.equal(out, c_refs[i % 2]), f"C iteration {i}"

    run_threads([job_a, job_b, job_c], iterations=4)
    for model in (a_target, b_target, c_target):
        decoder_config = model.get_decoder().config
        assert decoder_config._attn_implementation == "sdpa"


def test_two_threads_same_family_different_pairs():
    """Two Qwen2.5-VL pairs of different seeds, concurrently; each output equals its own stock output."""
    pairs = [family("qwen2_5_vl", 0), family("qwen2_5_vl", 5)]
    inputs = [inputs_for("qwen2_5_vl", seed) for seed in (6, 7)]
    refs = [pair[0].generate(**x, max_new_tokens=10) for pair, x in zip(pairs, inputs)]
    configs = [PruneConfig(keep_ratio=0.5, scorer="verifier"), PruneConfig(keep_ratio=0.1, scorer="topk")]

    def job(index):
        target, draft, _ = pairs[index]

        def run(i):
            out = target.generate(**inputs[index], max_new_tokens=10, assistant_model=draft,
                                  video_pruning=configs[index])
            assert torch.equal(out, refs[index]), f"pair {index} iteration {i}"
            stats = last_stats(target)
            assert stats.kept_video_tokens == max(1, int(stats.video_tokens * configs[index].keep_ratio))

        return run

    run_threads([job(0), job(1)], iterations=4)


def test_unregister_restores_stock_generate_then_register_again():
    target, draft, _ = family("llava_next_video")
    inputs = inputs_for("llava_next_video", seed=0)
    patched = patched_methods()
    assert {"generate", "_get_candidate_generator"} <= set(patched), sorted(patched)
    stock = {name: function.__wrapped__ for name, function in patched.items()}
    ref_plain = target.generate(**inputs, max_new_tokens=8)
    ref_pruned = target.generate(**inputs, max_new_tokens=8, assistant_model=draft, video_pruning=PruneConfig())
    specvlm_hf.unregister()
    try:
        specvlm_hf.unregister()  # idempotent
        assert not specvlm_hf.is_registered()
        assert patched_methods() == {}
        for name in patched:
            assert GenerationMixin.__dict__[name] is stock[name], name
            assert getattr(type(target), name) is stock[name], name
        assert torch.equal(target.generate(**inputs, max_new_tokens=8), ref_plain)
        with pytest.raises(ValueError, match="video_pruning"):
            target.generate(**inputs, max_new_tokens=8, assistant_model=draft, video_pruning=PruneConfig())
    finally:
        specvlm_hf.register()
    assert specvlm_hf.is_registered()
    specvlm_hf.register()  # idempotent: no double wrapping
    assert set(patched_methods()) == set(patched)
    for name in patched:
        assert GenerationMixin.__dict__[name].__wrapped__ is stock[name], name
    before = last_stats(target)
    out = target.generate(**inputs, max_new_tokens=8, assistant_model=draft, video_pruning=PruneConfig())
    assert torch.equal(out, ref_pruned) and torch.equal(out, ref_plain)
    assert last_stats(target) is not before


def test_unregister_while_another_thread_generates():
    """A call already inside generate keeps its own state if the methods are swapped under it; it ends lossless
    or with an error, never with a wrong output, and stock generate is left behind."""
    target, draft, _ = family("qwen2_vl")
    inputs = inputs_for("qwen2_vl", seed=1)
    ref = target.generate(**inputs, max_new_tokens=16)
    started, results = threading.Event(), []

    def slow_draft(module, args, kwargs):
        started.set()

    handle = draft.register_forward_pre_hook(slow_draft, with_kwargs=True)

    def run():
        try:
            results.append(target.generate(**inputs, max_new_tokens=16, assistant_model=draft,
                                           video_pruning=PruneConfig(num_draft_tokens=2)))
        except BaseException as error:
            results.append(error)

    worker = threading.Thread(target=run)
    try:
        worker.start()
        assert started.wait(timeout=60)
        specvlm_hf.unregister()
        worker.join(timeout=120)
    finally:
        handle.remove()
        specvlm_hf.register()
    assert len(results) == 1
    if isinstance(results[0], torch.Tensor):
        assert torch.equal(results[0], ref)
    assert torch.equal(target.generate(**inputs, max_new_tokens=16, assistant_model=draft,
                                       video_pruning=PruneConfig()), ref)


def test_one_target_shared_by_a_pruned_and_a_plain_thread():
    """While one thread's call switches the target's attention to the capture wrapper for its prefill, another
    thread's plain generate on the same model (LLaVA-OneVision: no per-instance rope_deltas, so stock generate is
    re-entrant) must be unaffected, and both outputs stay the stock ones."""
    target, draft, _ = family("llava_onevision")
    inputs = [inputs_for("llava_onevision", seed) for seed in (8, 9)]
    refs = [target.generate(**x, max_new_tokens=10) for x in inputs]

    def pruned(i):
        out = target.generate(**inputs[0], max_new_tokens=10, assistant_model=draft,
                              video_pruning=PruneConfig(keep_ratio=0.2))
        assert torch.equal(out, refs[0]), f"pruned iteration {i}"

    def plain(i):
        out = target.generate(**inputs[1], max_new_tokens=10)
        assert torch.equal(out, refs[1]), f"plain iteration {i}"

    run_threads([pruned, plain], iterations=6)
    assert target.get_decoder().config._attn_implementation == "sdpa"


def test_one_target_shared_by_two_pruned_threads():
    """Two pruned calls on the same LLaVA-OneVision target at once (e.g. a web server sharing one model). Each arms
    the capture by switching the target's attention implementation for its prefill; the switches must not nest
    wrongly (restoring another call's capture name would leave the model on an unregistered implementation)."""
    target, draft, _ = family("llava_onevision")
    inputs = [inputs_for("llava_onevision", seed) for seed in (10, 11)]
    refs = [target.generate(**x, max_new_tokens=8) for x in inputs]

    def job(index):
        def run(i):
            out = target.generate(**inputs[index], max_new_tokens=8, assistant_model=draft,
                                  video_pruning=PruneConfig(keep_ratio=0.3))
            assert torch.equal(out, refs[index]), f"thread {index} iteration {i}"

        return run

    # Make the overlap deterministic: each thread's first target prefill waits (inside the forward, i.e. after its
    # capture was armed) until the other thread's prefill has started too.
    barrier, waited = threading.Barrier(2, timeout=20), set()

    def meet(module, args, kwargs):
        hidden = kwargs.get("hidden_states", args[0] if args else None)
        me = threading.current_thread()
        if me is not threading.main_thread() and hidden.shape[1] > 8 and me not in waited:
            waited.add(me)
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                pass

    handle = target.get_decoder().layers[0].register_forward_pre_hook(meet, with_kwargs=True)
    try:
        run_threads([job(0), job(1)], iterations=3)
    finally:
        handle.remove()
        implementation = target.get_decoder().config._attn_implementation
        if implementation != "sdpa":  # do not leave a broken shared fixture behind for the other tests
            target.get_decoder().config._attn_implementation_internal = "sdpa"
    assert implementation == "sdpa", f"the target was left on attention implementation {implementation!r}"
    assert torch.equal(target.generate(**inputs[0], max_new_tokens=8), refs[0])

"""specvlm-hf demo: speculative decoding with a verifier-pruned video for the draft.

Runs offline on this machine: the trained testbed pair (weights/testbed-target, weights/testbed-draft) if it is in
the repository, else a tiny random Qwen2.5-VL pair (random weights say nothing about acceptance, only about
correctness). Prints the output, that it equals target-only output, and the stats.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

import specvlm_hf
from specvlm_hf.testbed import tiny

ROOT = Path(__file__).resolve().parents[1]


def tiny_random_setup():
    target, draft = tiny.build_tiny_pair("qwen2_5_vl", seed=0)
    processor = tiny.build_processor("qwen2_5_vl")
    frames = tiny.make_video(num_frames=8, height=112, width=112, seed=7)
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Describe the video."}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[prompt], videos=[frames], return_tensors="pt")
    return target, draft, processor, inputs, None


def testbed_setup():
    """The trained testbed pair on a fresh synthetic video (a seed never used in training or evaluation)."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    from specvlm_hf.testbed import synthetic, vocab

    target = Qwen2_5_VLForConditionalGeneration.from_pretrained(TESTBED / "testbed-target", dtype=torch.float32)
    draft = Qwen2_5_VLForConditionalGeneration.from_pretrained(TESTBED / "testbed-draft", dtype=torch.float32)
    processor = vocab.build_processor()
    sample = synthetic.make_sample(seed=int(time.time()) % 100_000 + 2_000_000_000)
    prompt = processor.apply_chat_template(vocab.chat_messages(sample.prompt), add_generation_prompt=True,
                                           tokenize=False)
    inputs = processor(text=[prompt], videos=[sample.frames], return_tensors="pt")
    return target.eval(), draft.eval(), processor, inputs, sample.caption


TESTBED = ROOT / "weights"


def main() -> None:
    torch.manual_seed(0)
    if (TESTBED / "testbed-target" / "config.json").exists():
        target, draft, processor, inputs, truth = testbed_setup()
        print("Models: the trained testbed pair (weights/testbed-target, weights/testbed-draft)")
    else:
        target, draft, processor, inputs, truth = tiny_random_setup()
        print("Models: tiny random Qwen2.5-VL target (vocab 152064) and draft (vocab 151936, own vision tower)")
    prompt_length = inputs["input_ids"].shape[1]
    # Warm-up (lazy hooks, allocator) so that the timings below compare like with like.
    target.generate(**inputs, max_new_tokens=2, assistant_model=draft, video_pruning=specvlm_hf.PruneConfig())

    start = time.perf_counter()
    reference = target.generate(**inputs, max_new_tokens=48, do_sample=False)
    ar_seconds = time.perf_counter() - start

    config = specvlm_hf.PruneConfig(keep_ratio=0.1)
    start = time.perf_counter()
    output = target.generate(**inputs, max_new_tokens=48, do_sample=False, assistant_model=draft,
                             video_pruning=config)
    sd_seconds = time.perf_counter() - start
    stats = specvlm_hf.last_stats(target)

    text = processor.batch_decode(output[:, prompt_length:], skip_special_tokens=True)[0]
    print(f"Output: {text!r}")
    if truth is not None:
        print(f"Ground truth: {truth!r}")
    identical = torch.equal(output, reference)
    print(f"Identical to target-only output: {identical}")
    print(f"Video tokens seen by the draft: {stats.kept_video_tokens}/{stats.video_tokens}")
    print(f"tau (tokens per verification, bonus incl.): {stats.mean_accepted_length:.2f}; "
          f"acceptance: {stats.acceptance_rate:.1%}")
    print(f"Wall time: target alone {ar_seconds:.2f}s, speculative {sd_seconds:.2f}s "
          f"(speedup {ar_seconds / sd_seconds:.2f}x)")
    print(stats)
    if not identical:
        raise SystemExit("speculative output differs from target-only output")


if __name__ == "__main__":
    main()

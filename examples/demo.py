"""specvlm-hf demo: speculative decoding with a verifier-pruned video for the draft, on the trained testbed pair.

    python examples/demo.py              # make demo
    python examples/demo.py --videos 20

Runs offline from a clone of the repository: the 12-layer target and the 1-layer draft distilled from it are in
weights/. The videos are synthetic clips of moving shapes like those the pair was trained on, drawn from fixed seeds
that neither training nor the benchmark uses, so every run shows the same videos. For each video the target alone
and the target with the pruned draft run on the same inputs, greedy, alternating which goes first; the demo prints
one caption, checks that every speculative output equals the target's own, and reports the median speedup with its
spread over the videos.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

import specvlm_hf
from specvlm_hf.testbed import synthetic

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"
DEMO_SEED_BASE = 3_000_000_000  # training seeds are < 1e9, held-out ones from 1e9, benchmark ones from 2e9


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--videos", type=int, default=12, help="videos timed (fixed seeds: the same every run)")
    parser.add_argument("--keep-ratio", type=float, default=0.1, help="share of the video tokens the draft sees")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (tiny models run fastest on one)")
    return parser.parse_args()


def load_pair() -> tuple[torch.nn.Module, torch.nn.Module, object]:
    if not (WEIGHTS / "testbed-target" / "model.safetensors").is_file():
        raise SystemExit(f"{WEIGHTS}/testbed-target not found: the trained pair ships with the repository (not the "
                         "wheel); run the demo from a clone, or retrain the pair with `make testbed`.")
    target = Qwen2_5_VLForConditionalGeneration.from_pretrained(WEIGHTS / "testbed-target", dtype=torch.float32)
    draft = Qwen2_5_VLForConditionalGeneration.from_pretrained(WEIGHTS / "testbed-draft", dtype=torch.float32)
    return target.eval(), draft.eval(), AutoProcessor.from_pretrained(WEIGHTS / "testbed-target")


def video_inputs(processor, seed: int):
    sample = synthetic.make_sample(seed)
    messages = [{"role": "user", "content": [{"type": "video", "video": sample.frames},
                                             {"type": "text", "text": sample.prompt}]}]
    inputs = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True,
                                           return_tensors="pt")
    return sample, inputs


def timed(generate, inputs) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    output = generate(inputs)
    return output, time.perf_counter() - start


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    target, draft, processor = load_pair()
    config = specvlm_hf.PruneConfig(keep_ratio=args.keep_ratio)
    options = {"do_sample": False, "max_new_tokens": args.max_new_tokens}

    def alone(inputs):
        return target.generate(**inputs, **options)

    def speculative(inputs):
        return target.generate(**inputs, **options, assistant_model=draft, video_pruning=config)

    _, warm_up = video_inputs(processor, DEMO_SEED_BASE - 1)  # lazy hooks and allocator, outside the timings
    alone(warm_up), speculative(warm_up)

    speedups, taus, identical = [], [], 0
    for i in range(args.videos):
        sample, inputs = video_inputs(processor, DEMO_SEED_BASE + i)
        order = (alone, speculative) if i % 2 == 0 else (speculative, alone)
        runs = {generate: timed(generate, inputs) for generate in order}
        (reference, alone_s), (output, speculative_s) = runs[alone], runs[speculative]
        stats = specvlm_hf.last_stats(target)
        speedups.append(alone_s / speculative_s)
        taus.append(stats.mean_accepted_length)
        identical += torch.equal(output, reference)
        if i == 0:
            prompt_length = inputs["input_ids"].shape[1]
            print(f"Video 1 of {args.videos}, prompt {sample.prompt!r}")
            print(f"  output:       {processor.decode(output[0, prompt_length:], skip_special_tokens=True)!r}")
            print(f"  ground truth: {sample.caption!r}")
            print(f"  {stats}")

    quartiles = statistics.quantiles(speedups, n=4) if len(speedups) > 1 else speedups * 3
    print(f"\nIdentical to the target's own output: {identical} of {args.videos} videos")
    print(f"Draft sees {args.keep_ratio:.0%} of the video tokens; tokens per target forward (tau): median "
          f"{statistics.median(taus):.2f}")
    print(f"Speedup: median {statistics.median(speedups):.2f}x (middle half of the videos {quartiles[0]:.2f}x-"
          f"{quartiles[2]:.2f}x, all {min(speedups):.2f}x-{max(speedups):.2f}x) over {args.videos} videos.")
    print("  = wall time of target.generate alone / with the pruned draft, on the same video, greedy, batch 1,\n"
          "    prefills included, on this machine's CPU: what pruned speculative decoding saves on this toy pair\n"
          "    (a 12-layer target, a 1-layer draft), not a prediction for other models or hardware.")
    if identical != args.videos:
        raise SystemExit("a speculative output differs from the target's own output")


if __name__ == "__main__":
    main()

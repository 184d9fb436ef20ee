"""Train the testbed pair: target, draft alone, draft distilled from the target, then check the gates.

    python -m specvlm_hf.testbed.train --out weights --ckpt .testbed_ckpt [--quick] [--seed 0]

Training batches are rendered on the fly from integer seeds (the real processor costs ~10 ms per
sample, under 10% of a training step, and fresh data never overfits); the held-out sets are
rendered once and cached under --ckpt. Every phase checkpoints its model, optimiser and step, and a
rerun resumes from the last checkpoint. The data of step s depends only on (seed, phase, s), so a
resumed run computes the same thing as an uninterrupted one.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm
from transformers import Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor

from ..compat import CACHE_KEY, output_cache
from .models import DRAFT, TARGET, build_draft, build_target, count_parameters
from .synthetic import SLOT_WORDS, Sample, make_sample
from .vocab import MERGE_SIZE, PATCH_SIZE, TEMPORAL_PATCH_SIZE, build_processor, chat_messages

SLOTS = ("count", "colour", "shape", "row", "col", "motion")
PHASE_OFFSET = {"target": 0, "draft": 1, "distill": 2, "target_extra": 3}
EVAL_SEED_BASE = 1_000_000_000  # held-out seeds; training seeds stay far below
LONG_FRAMES = 32  # 16 temporal groups x 36 merged tokens = 576 video tokens


@dataclass(frozen=True)
class Plan:
    """Step counts and optimisation settings of one run."""

    target_steps: int
    draft_steps: int
    distill_steps: int
    batch: int = 8
    lr: float = 2e-3
    draft_lr: float = 3e-3
    long_every: int = 0  # every n-th step trains on long (32-frame) videos instead; 0 = never
    long_batch: int = 2
    eval_size: int = 200
    long_eval_size: int = 50
    ckpt_every: int = 50
    target_extra_steps: int = 0  # a second, lower cosine cycle for the target (fresh optimiser)
    extra_lr: float = 6e-4


QUICK = Plan(target_steps=300, draft_steps=40, distill_steps=40, eval_size=128, long_eval_size=8, ckpt_every=50)
FULL = Plan(target_steps=2400, draft_steps=300, distill_steps=500, long_every=8, target_extra_steps=1000)


# ----------------------------------------------------------------------------- data


def chat_text(processor: Qwen2_5_VLProcessor, sample: Sample, with_caption: bool = True) -> str:
    """The chat-templated prompt, optionally followed by the caption and the end-of-turn token."""
    text = processor.apply_chat_template(chat_messages(sample.prompt), add_generation_prompt=True)
    return text + sample.caption + "<|im_end|>\n" if with_caption else text


def make_batch(processor: Qwen2_5_VLProcessor, samples: list[Sample]) -> dict[str, torch.Tensor]:
    """Processor outputs plus `labels` (caption tokens and <|im_end|>) and `slot_ids` per label.

    The tokenizer is word-level, so caption word i is exactly one token and slot tags line up.
    """
    texts = [chat_text(processor, s) for s in samples]
    batch = dict(processor(text=texts, videos=[s.frames for s in samples], return_tensors="pt", padding=True))
    ids = batch["input_ids"]
    labels = torch.full_like(ids, -100)
    slot_ids = torch.full_like(ids, -1)
    im_start = processor.tokenizer.convert_tokens_to_ids("<|im_start|>")
    for i, s in enumerate(samples):
        # The caption starts after the last "<|im_start|> assistant" pair; it ends with <|im_end|>.
        start = int((ids[i] == im_start).nonzero()[-1]) + 2
        n = len(s.words) + 1
        labels[i, start : start + n] = ids[i, start : start + n]
        for j, slot in enumerate(s.slots):
            if slot is not None:
                slot_ids[i, start + j] = SLOTS.index(slot)
    batch["labels"] = labels
    batch["slot_ids"] = slot_ids
    return batch


def step_samples(seed: int, phase: str, step: int, plan: Plan) -> list[Sample]:
    """The training samples of one step: a function of (seed, phase, step) only."""
    long = plan.long_every and step % plan.long_every == plan.long_every - 1
    n, frames = (plan.long_batch, LONG_FRAMES) if long else (plan.batch, 8)
    base = (seed * 4 + PHASE_OFFSET[phase]) * 100_000_000 + step * 64
    return [make_sample(base + i, num_frames=frames) for i in range(n)]


def eval_samples(seed: int, n: int, num_frames: int = 8) -> list[Sample]:
    """Held-out samples (seeds disjoint from every training seed)."""
    return [make_sample(EVAL_SEED_BASE + seed * 10_000_000 + num_frames * 100_000 + i, num_frames) for i in range(n)]


def cached_eval_batches(
    processor: Qwen2_5_VLProcessor, samples: list[Sample], path: Path, batch: int = 8
) -> list[dict[str, torch.Tensor]]:
    """Processor outputs of the held-out set, rendered once and cached to disk."""
    if path.exists():
        return torch.load(path)
    batches = [make_batch(processor, samples[i : i + batch]) for i in range(0, len(samples), batch)]
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(batches, path)
    return batches


# ----------------------------------------------------------------------------- losses and metrics


def forward_logits(model: Qwen2_5_VLForConditionalGeneration, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Logits aligned with `batch['labels']` (position t predicts token t)."""
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "slot_ids")}
    logits = model(**inputs, use_cache=False).logits
    # Shift so that logits[:, t] is the prediction for token t (the first position predicts nothing).
    return torch.cat([logits[:, :1] * 0, logits[:, :-1]], dim=1)


def caption_ce(logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Cross-entropy on caption tokens only (teacher forcing)."""
    return F.cross_entropy(logits.flatten(0, 1).float(), batch["labels"].flatten(), ignore_index=-100)


def distill_kl(student: torch.Tensor, teacher: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """KL(teacher || student) on caption positions."""
    mask = batch["labels"] != -100
    vocab = min(student.shape[-1], teacher.shape[-1])
    s = F.log_softmax(student[mask][:, :vocab].float(), -1)
    t = F.log_softmax(teacher[mask][:, :vocab].float(), -1)
    return F.kl_div(s, t, log_target=True, reduction="batchmean")


class Tally:
    """Running per-slot and per-caption accuracy counts."""

    def __init__(self) -> None:
        self.hit = {s: 0 for s in (*SLOTS, "filler", "all")}
        self.tot = {s: 0 for s in (*SLOTS, "filler", "all")}
        self.exact = 0
        self.captions = 0
        self.agree = 0
        self.agree_tot = 0

    def add(self, logits: torch.Tensor, batch: dict[str, torch.Tensor], other: torch.Tensor | None = None) -> None:
        """Count teacher-forced argmax hits; `other` = a second model's logits for top-1 agreement."""
        pred = logits.argmax(-1)
        labels, slots = batch["labels"], batch["slot_ids"]
        mask = labels != -100
        correct = (pred == labels) & mask
        for k, name in enumerate(SLOTS):
            m = slots == k
            self.hit[name] += int((correct & m).sum())
            self.tot[name] += int(m.sum())
        filler = mask & (slots == -1)
        self.hit["filler"] += int((correct & filler).sum())
        self.tot["filler"] += int(filler.sum())
        self.hit["all"] += int(correct.sum())
        self.tot["all"] += int(mask.sum())
        # All caption tokens right under teacher forcing <=> greedy decoding reproduces the caption.
        self.exact += int(((correct | ~mask).all(1)).sum())
        self.captions += labels.shape[0]
        if other is not None:
            self.agree += int(((pred == other.argmax(-1)) & mask).sum())
            self.agree_tot += int(mask.sum())

    def result(self) -> dict[str, float]:
        """Accuracies in [0, 1]."""
        out = {k: self.hit[k] / max(1, self.tot[k]) for k in self.hit}
        out["exact_match"] = self.exact / max(1, self.captions)
        if self.agree_tot:
            out["top1_agreement"] = self.agree / self.agree_tot
        return out


def chance_levels() -> dict[str, float]:
    """Chance accuracy per slot (uniform over the slot's words; motion has 3 legal moves per quadrant)."""
    out = {s: 1 / len(SLOT_WORDS[s]) for s in SLOTS}
    out["motion"] = 1 / 3
    out["count"] = 1 / 2
    return out


@torch.no_grad()
def evaluate(
    model: Qwen2_5_VLForConditionalGeneration,
    batches: list[dict[str, torch.Tensor]],
    reference: Qwen2_5_VLForConditionalGeneration | None = None,
) -> dict[str, float]:
    """Teacher-forced per-slot accuracy, exact match and (with `reference`) top-1 agreement."""
    model.eval()
    tally = Tally()
    for b in batches:
        other = forward_logits(reference.eval(), b) if reference is not None else None
        tally.add(forward_logits(model, b), b, other)
    return tally.result()


def fmt(metrics: dict[str, float]) -> str:
    """Compact one-line metrics."""
    return " ".join(f"{k}={v:.3f}" for k, v in metrics.items())


# ----------------------------------------------------------------------------- training phases


def lr_at(step: int, total: int, peak: float) -> float:
    """Linear warm-up over 5% of the steps, then cosine decay to 5% of the peak."""
    warm = max(1, total // 20)
    if step < warm:
        return peak * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def run_phase(
    phase: str,
    model: Qwen2_5_VLForConditionalGeneration,
    processor: Qwen2_5_VLProcessor,
    plan: Plan,
    steps: int,
    peak_lr: float,
    seed: int,
    ckpt_dir: Path,
    teacher: Qwen2_5_VLForConditionalGeneration | None = None,
    eval_batches: list[dict[str, torch.Tensor]] | None = None,
) -> float:
    """Train `model` for `steps` steps (CE, or KL to `teacher` when given); resumable. Returns seconds."""
    path = ckpt_dir / f"{phase}.pt"
    opt = torch.optim.AdamW(model.parameters(), lr=peak_lr, weight_decay=0.01, betas=(0.9, 0.98))
    start, elapsed = 0, 0.0
    if path.exists():
        state = torch.load(path)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        start, elapsed = state["step"], state["elapsed"]
    if start >= steps:
        return elapsed
    if teacher is not None:
        teacher.eval()
    model.train()
    tally = Tally()
    bar = tqdm(range(start, steps), initial=start, total=steps, desc=phase, dynamic_ncols=True, mininterval=5)
    t0 = time.perf_counter()
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, peak_lr)
        batch = make_batch(processor, step_samples(seed, phase, step, plan))
        logits = forward_logits(model, batch)
        if teacher is None:
            loss = caption_ce(logits, batch)
        else:
            with torch.no_grad():
                teacher_logits = forward_logits(teacher, batch)
            loss = distill_kl(logits, teacher_logits, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        tally.add(logits.detach(), batch)
        bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{opt.param_groups[0]['lr']:.1e}", refresh=False)
        done = step + 1
        if done % plan.ckpt_every == 0 or done == steps:
            acc = tally.result()
            tqdm.write(f"[{phase} {done}/{steps}] loss={loss.item():.4f} train " + fmt(acc))
            tally = Tally()
            if eval_batches is not None and (done % (plan.ckpt_every * 4) == 0 or done == steps):
                tqdm.write(f"[{phase} {done}/{steps}] held-out " + fmt(evaluate(model, eval_batches)))
                model.train()
            now = elapsed + time.perf_counter() - t0
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": done, "elapsed": now}, path)
    model.eval()
    return elapsed + time.perf_counter() - t0


# ----------------------------------------------------------------------------- gates


def object_token_mask(sample: Sample) -> torch.Tensor:
    """Bool per video token (frame-group, row, col raster order): any non-background pixel in it."""
    frames = sample.frames
    if len(frames) % TEMPORAL_PATCH_SIZE:
        frames = np.concatenate([frames, frames[-1:]])
    cell = PATCH_SIZE * MERGE_SIZE
    t, h, w = len(frames) // TEMPORAL_PATCH_SIZE, frames.shape[1] // cell, frames.shape[2] // cell
    occupied = frames.reshape(t, TEMPORAL_PATCH_SIZE, h, cell, w, cell, 3).any(axis=(1, 3, 5, 6))
    return torch.from_numpy(occupied.reshape(-1))


@torch.no_grad()
def attention_gate(
    model: Qwen2_5_VLForConditionalGeneration, processor: Qwen2_5_VLProcessor, samples: list[Sample]
) -> dict[str, float]:
    """Post-video attention of the target: share on the top 10% of video tokens and on object tokens.

    Queries are the prompt tokens after the last video placeholder; rows are averaged over heads,
    queries and layers, then renormalised over the video tokens (independent eager reference).
    """
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")
    video_id = model.config.video_token_id
    top, obj, obj_share, video_mass = [], [], [], []
    try:
        for s in samples:
            inputs = processor(
                text=[chat_text(processor, s, with_caption=False)], videos=[s.frames], return_tensors="pt"
            )
            out = model(**inputs, output_attentions=True, use_cache=False)
            is_video = inputs["input_ids"][0] == video_id
            last_video = int(is_video.nonzero()[-1])
            rows = torch.stack([a[0, :, last_video + 1 :, :] for a in out.attentions])  # L, H, Q, K
            mass = rows.mean(dim=(0, 1, 2))
            video = mass[is_video]
            video_mass.append(float(video.sum()))
            video = video / video.sum()
            k = max(1, int(len(video) * 0.1))
            top.append(float(video.topk(k).values.sum()))
            mask = object_token_mask(s)
            obj.append(float(video[mask].sum()))
            obj_share.append(float(mask.float().mean()))
    finally:
        model.set_attn_implementation(previous)
    return {
        "top10_share": float(np.mean(top)),
        "object_attention_share": float(np.mean(obj)),
        "object_token_share": float(np.mean(obj_share)),
        "raw_video_mass": float(np.mean(video_mass)),
    }


@torch.no_grad()
def decode_step_seconds(
    model: Qwen2_5_VLForConditionalGeneration, processor: Qwen2_5_VLProcessor, sample: Sample, steps: int = 40
) -> float:
    """Median seconds of one 1-token forward with a KV cache after the video prefill."""
    model.eval()
    inputs = processor(
        text=[chat_text(processor, sample, with_caption=False)], videos=[sample.frames], return_tensors="pt"
    )
    out = model(**inputs, use_cache=True)
    cache, token = output_cache(out), out.logits[:, -1:].argmax(-1)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        out = model(input_ids=token, use_cache=True, **{CACHE_KEY: cache})
        times.append(time.perf_counter() - t0)
        cache, token = output_cache(out), out.logits[:, -1:].argmax(-1)
    return float(np.median(times))


@torch.no_grad()
def greedy_check(
    model: Qwen2_5_VLForConditionalGeneration, processor: Qwen2_5_VLProcessor, samples: list[Sample]
) -> float:
    """Share of samples whose `generate` output (greedy) equals the caption exactly."""
    hits = 0
    for s in samples:
        inputs = processor(text=[chat_text(processor, s, with_caption=False)], videos=[s.frames], return_tensors="pt")
        out = model.generate(**inputs, max_new_tokens=48, do_sample=False)
        text = processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        hits += int(text.strip() == s.caption)
    return hits / len(samples)


# ----------------------------------------------------------------------------- export


def model_card(name: str, model: Qwen2_5_VLForConditionalGeneration, report: dict) -> str:
    """README.md of one exported model: data, training, wall time and every gate number."""
    role = "target (verifier)" if name == "testbed-target" else "draft (assistant)"
    t, d0, d1 = report["target"], report["draft_alone"], report["draft_distilled"]
    rows = "\n".join(f"| {k} | {report['chance'][k]:.3f} | {t[k]:.3f} | {d0[k]:.3f} | {d1[k]:.3f} |" for k in SLOTS)
    rows += "\n" + "\n".join(f"| {k} | | {t[k]:.3f} | {d0[k]:.3f} | {d1[k]:.3f} |" for k in ("filler", "all"))
    rows += f"\n| exact_match | | {t['exact_match']:.3f} | {d0['exact_match']:.3f} | {d1['exact_match']:.3f} |"
    rows += f"\n| top-1 agreement with target | | | {d0['top1_agreement']:.3f} | {d1['top1_agreement']:.3f} |"
    summary = "\n".join(f"- **{k}**: {v}" for k, v in report.get("gate_summary", {}).items())
    a = report.get("attention", {})
    long = report.get("target_long_576", {})
    ms = report.get("decode_step_ms", {})
    minutes = report.get("total_s", 0) / 60
    tc, vc = model.config.text_config, model.config.vision_config
    arch = (
        f"`Qwen2_5_VLForConditionalGeneration`: {tc.num_hidden_layers} decoder layers, hidden {tc.hidden_size}, "
        f"{tc.num_attention_heads} heads x {tc.hidden_size // tc.num_attention_heads} (KV heads {tc.num_key_value_heads}), "
        f"MLP {tc.intermediate_size}, vocab {tc.vocab_size}; M-RoPE base {tc.rope_parameters['rope_theta']} with sections "
        f"{tc.rope_parameters['mrope_section']} (a small base so the LM can resolve columns of a 6-token-wide grid); "
        f"own vision tower: depth {vc.depth}, hidden {vc.hidden_size}, patch {vc.patch_size}, merge "
        f"{vc.spatial_merge_size}, temporal patch {vc.temporal_patch_size}, tokens_per_second {vc.tokens_per_second}."
    )
    quick = report.get("quick_run", {})
    gate1_text = (
        f"{quick['plan']['target_steps']} target steps, {quick['total_s'] / 60:.1f} min; held-out "
        + "; ".join(f"{k} {v}" for k, v in quick["gate1"].items())
        if "gate1" in quick
        else "not recorded (run `--quick` first)"
    )
    return f"""---
library_name: transformers
pipeline_tag: video-text-to-text
tags: [specvlm-hf, testbed, synthetic, qwen2_5_vl]
---
# specvlm-hf {name}: the {role} of the trained testbed pair

A tiny Qwen2.5-VL-architecture model ({count_parameters(model) / 1e6:.2f} M parameters, stored in fp16) trained from
scratch on synthetic videos by `python -m specvlm_hf.testbed.train`. It exists to measure speculative decoding with
verifier-guided video-token pruning (specvlm-hf); it knows nothing but its toy grammar. Load it with
`Qwen2_5_VLForConditionalGeneration.from_pretrained(path)` and `AutoProcessor.from_pretrained(path)`.

## Model

{arch}

## Data

96x96 videos, 8 frames = 4 temporal patches x 6x6 merged tokens = 144 video tokens (every 8th training step uses
32-frame videos, 576 tokens). One or two objects (distinct colours among red/green/blue/yellow/white; shapes
square/ring/cross/triangle, 32x32 px = 2x2 merged tokens) on black. Each starts in a quadrant (offset on the 16 px
token grid) and stays or moves to an adjacent quadrant in 16 px steps, one step per temporal patch; objects cover
~16.5% of the video tokens. Captions mix visual facts (slots: count, colour, shape, row, col, motion) with filler
fixed by the prompt (two prompts, two templates). Rendered on the fly from integer seeds
(`specvlm_hf.testbed.synthetic`); held-out seeds are disjoint from training seeds (one-object scenes come from a space
of ~1k, so some held-out one-object scenes also occur in training).

Processor: stock `Qwen2_5_VLProcessor`, patch_size 8, merge_size 2, temporal_patch_size 2 (a merged token covers
16x16 px); a word-level tokenizer (the `tokenizers` library) with the Qwen2.5-VL special tokens and chat template.

## Training

AdamW, batch 8, teacher forcing on caption tokens only. Target {report["plan"]["target_steps"]} steps
(lr {report["plan"]["lr"]}, cosine) then {report["plan"]["target_extra_steps"]} steps of a second cosine cycle
(lr {report["plan"]["extra_lr"]}), draft {report["plan"]["draft_steps"]} steps alone, then
{report["plan"]["distill_steps"]} steps of distillation (KL to the target's logits on caption positions).
1 thread of a 2-core CPU shared with other work. Wall time: {minutes:.1f} min in total (target
{(report["target_train_s"] + report.get("target_extra_train_s", 0)) / 60:.1f} min, draft {report["draft_train_s"] / 60:.1f} min, distillation
{report["distill_train_s"] / 60:.1f} min, the rest evaluation and gates).

## Gates (held-out, teacher forced; exact_match = every caption token right = greedy decoding reproduces the caption)

{summary}
- **gate1 (short run, `--quick`)**: {gate1_text}

| slot | chance | target | draft alone | draft distilled |
|---|---|---|---|---|
{rows}

- Gate 3, target attention from the tokens after the last video placeholder (mean over layers, heads and query rows,
  renormalised over video tokens; eager `output_attentions` on 50 held-out videos): top 10% of video tokens hold
  {a.get("top10_share", float("nan")):.3f} of the mass; object tokens hold {a.get("object_attention_share", float("nan")):.3f}
  while being {a.get("object_token_share", float("nan")):.3f} of the tokens; the video gets
  {a.get("raw_video_mass", float("nan")):.3f} of the raw attention mass.
- Gate 4, long videos (32 frames, 576 video tokens, {report["plan"]["long_eval_size"]} held-out): target
  {fmt(long) if long else "n/a"}.
- Greedy `generate` exact match on 20 held-out videos: {report.get("greedy_exact_match_20", float("nan")):.3f}.
- Decode step (1 token, KV cache, after a 144-token video prefill, median): target {ms.get("target", float("nan")):.2f} ms,
  draft {ms.get("draft", float("nan")):.2f} ms, ratio {ms.get("ratio", float("nan")):.2f}x.

## Full report

```json
{json.dumps(report, indent=2, sort_keys=True)}
```
"""


def export(
    model: Qwen2_5_VLForConditionalGeneration, processor: Qwen2_5_VLProcessor, out: Path, name: str, report: dict
) -> None:
    """Write fp16 safetensors, the processor files and the model card."""
    path = out / name
    path.mkdir(parents=True, exist_ok=True)
    half = copy.deepcopy(model).to(torch.float16)
    half.config.dtype = "float16"
    half.save_pretrained(path, safe_serialization=True)
    processor.save_pretrained(path)
    (path / "README.md").write_text(model_card(name, model, report))


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict:
    """Train target and draft, check the gates, export both; returns the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("weights"))
    parser.add_argument("--ckpt", type=Path, default=Path(".testbed_ckpt"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="short learnability run (gate 1; no export)")
    parser.add_argument("--threads", type=int, default=1, help="1 is much faster than 2 when the other core is busy")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    plan = QUICK if args.quick else FULL
    ckpt = args.ckpt / ("quick" if args.quick else "full") / f"seed{args.seed}"
    ckpt.mkdir(parents=True, exist_ok=True)
    processor = build_processor()
    wall0 = time.perf_counter()
    trained = 0.0  # training seconds spent in this invocation (a resumed run re-counts from checkpoints)

    held = cached_eval_batches(processor, eval_samples(args.seed, plan.eval_size), ckpt / "eval.pt")
    report: dict = {"plan": asdict(plan), "seed": args.seed, "chance": chance_levels()}
    report["sizes"] = {"target": asdict(TARGET), "draft": asdict(DRAFT)}

    def phase(name: str, model, steps: int, lr: float, **kw) -> None:
        nonlocal trained
        t0 = time.perf_counter()
        report[f"{name}_train_s"] = run_phase(name, model, processor, plan, steps, lr, args.seed, ckpt, **kw)
        trained += time.perf_counter() - t0

    target = build_target(args.seed)
    phase("target", target, plan.target_steps, plan.lr, eval_batches=held)
    if plan.target_extra_steps:
        phase("target_extra", target, plan.target_extra_steps, plan.extra_lr, eval_batches=held)
    report["target"] = evaluate(target, held)
    print("target held-out:", fmt(report["target"]), flush=True)

    draft = build_draft(args.seed + 1)
    phase("draft", draft, plan.draft_steps, plan.draft_lr)
    report["draft_alone"] = evaluate(draft, held, reference=target)
    print("draft alone held-out:", fmt(report["draft_alone"]), flush=True)
    phase("distill", draft, plan.distill_steps, plan.draft_lr / 2, teacher=target)
    report["draft_distilled"] = evaluate(draft, held, reference=target)
    print("draft distilled held-out:", fmt(report["draft_distilled"]), flush=True)

    quick_report = args.ckpt / "quick" / f"seed{args.seed}" / "report.json"
    if args.quick:
        report["gate1"] = gate1(report)
    else:
        report.update(gates(target, draft, processor, plan, args.seed, ckpt))
        report["gate_summary"] = gate_summary(report)
        if quick_report.exists():  # gate 1 is the short run's result (`--quick`), reported with the pair
            quick = json.loads(quick_report.read_text())
            report["quick_run"] = {k: quick[k] for k in ("gate1", "target", "total_s", "plan") if k in quick}
    report["params"] = {"target": count_parameters(target), "draft": count_parameters(draft)}
    train_s = sum(v for k, v in report.items() if k.endswith("_train_s"))
    report["total_s"] = train_s + (time.perf_counter() - wall0 - trained)  # training + evaluation and gates
    (ckpt / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2), flush=True)
    if not args.quick:
        export(target, processor, args.out, "testbed-target", report)
        export(draft, processor, args.out, "testbed-draft", report)
    return report


def gate1(report: dict) -> dict[str, str]:
    """Every slot's held-out teacher-forced accuracy against its chance level."""
    t, chance = report["target"], report["chance"]
    return {k: f"{'ABOVE' if t[k] > chance[k] else 'AT/BELOW'} chance ({t[k]:.3f} vs {chance[k]:.3f})" for k in SLOTS}


def gate_summary(report: dict) -> dict[str, str]:
    """Pass/fail of gates 2 and the cost ratio, with the measured numbers (gates 3-4 are report-only)."""
    t, d = report["target"], report["draft_distilled"]
    worst = min(SLOTS, key=lambda k: t[k])
    out = {
        "gate2_target_slots>=0.90": f"{'PASS' if t[worst] >= 0.9 else 'FAIL'} (lowest: {worst} {t[worst]:.3f})",
        "gate2_target_exact>=0.70": f"{'PASS' if t['exact_match'] >= 0.7 else 'FAIL'} ({t['exact_match']:.3f})",
        "gate2_draft_weaker": f"{'PASS' if d['all'] < t['all'] else 'FAIL'} (draft {d['all']:.3f} vs target {t['all']:.3f})",
        "gate2_draft_agreement": f"{d['top1_agreement']:.3f} top-1 agreement with the target",
        "decode_ratio>=5": f"{'PASS' if report['decode_step_ms']['ratio'] >= 5 else 'FAIL'} "
        f"({report['decode_step_ms']['ratio']:.2f}x)",
    }
    return out


def gates(
    target: Qwen2_5_VLForConditionalGeneration,
    draft: Qwen2_5_VLForConditionalGeneration,
    processor: Qwen2_5_VLProcessor,
    plan: Plan,
    seed: int,
    ckpt: Path,
) -> dict:
    """Gate 2-4 numbers plus the decode-step cost ratio."""
    out: dict = {}
    long_batches = cached_eval_batches(
        processor, eval_samples(seed, plan.long_eval_size, LONG_FRAMES), ckpt / "eval_long.pt", batch=2
    )
    out["target_long_576"] = evaluate(target, long_batches)
    print("target long (576 video tokens):", fmt(out["target_long_576"]), flush=True)
    attn_samples = eval_samples(seed + 1, 50)
    out["attention"] = attention_gate(target, processor, attn_samples)
    print("attention:", out["attention"], flush=True)
    out["greedy_exact_match_20"] = greedy_check(target, processor, attn_samples[:20])
    timing = attn_samples[0]
    t_target = decode_step_seconds(target, processor, timing)
    t_draft = decode_step_seconds(draft, processor, timing)
    out["decode_step_ms"] = {"target": t_target * 1e3, "draft": t_draft * 1e3, "ratio": t_target / t_draft}
    print("decode step:", out["decode_step_ms"], flush=True)
    return out


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()

"""Benchmark inputs: the processor's batch-1 output for each video, built once and reused by every method."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v")
# Benchmark seeds sit far above every training and held-out seed of `specvlm_hf.testbed.train`
# (training < 1e9, held-out from 1e9), so no benchmark video was seen in training.
BENCH_SEED_BASE = 2_000_000_000


@dataclass
class BenchInput:
    """One prompt + video, ready for ``model.generate(**inputs)``."""

    name: str
    inputs: dict[str, torch.Tensor]
    video_tokens: int
    reference: str | None = None  # ground-truth caption (testbed only)
    object_mask: torch.Tensor | None = None  # per video token: does it show an object (testbed only)
    reference_slots: tuple[str | None, ...] | None = None  # slot tag per caption word (testbed only)


def count_video_tokens(inputs: dict[str, torch.Tensor], video_token_id: int) -> int:
    """Video placeholders in the prompt."""
    return int((inputs["input_ids"] == video_token_id).sum())


def testbed_inputs(
    processor: Any, count: int, num_frames: int, video_token_id: int, seed: int = 0
) -> list[BenchInput]:
    """`count` synthetic testbed videos with their prompts, processed exactly as in training (minus the caption)."""
    from specvlm_hf.testbed.synthetic import make_sample
    from specvlm_hf.testbed.train import chat_text, object_token_mask

    out = []
    for i in range(count):
        sample_seed = BENCH_SEED_BASE + seed * 10_000_000 + num_frames * 100_000 + i
        sample = make_sample(sample_seed, num_frames=num_frames)
        text = chat_text(processor, sample, with_caption=False)
        inputs = dict(processor(text=[text], videos=[sample.frames], return_tensors="pt"))
        out.append(
            BenchInput(
                name=f"testbed-{sample_seed}",
                inputs=inputs,
                video_tokens=count_video_tokens(inputs, video_token_id),
                reference=sample.caption,
                object_mask=object_token_mask(sample),
                reference_slots=sample.slots,
            )
        )
    return out


def read_video(path: Path, num_frames: int) -> np.ndarray:
    """`num_frames` RGB frames (T, H, W, 3 uint8) evenly spaced over the clip, decoded with PyAV."""
    import av

    with av.open(str(path)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    if not frames:
        raise ValueError(f"{path}: no video frames could be decoded")
    picks = np.linspace(0, len(frames) - 1, num_frames).round().astype(int)
    return np.stack([frames[i] for i in picks])


def folder_inputs(
    processor: Any, folder: Path, count: int, num_frames: int, prompt: str, video_token_id: int
) -> list[BenchInput]:
    """The first `count` video files of `folder` (sorted by name), each with `prompt`, via the chat template."""
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if not paths:
        raise ValueError(f"--videos {folder}: no video files ({', '.join(VIDEO_SUFFIXES)}) found")
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": prompt}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    out = []
    for path in paths[:count]:
        inputs = dict(processor(text=[text], videos=[read_video(path, num_frames)], return_tensors="pt"))
        out.append(BenchInput(path.name, inputs, count_video_tokens(inputs, video_token_id)))
    return out


def to_device(item: BenchInput, device: torch.device, dtype: torch.dtype) -> BenchInput:
    """Move the tensors to `device`, and pixels to the models' dtype (other floats, e.g. frame timing, stay)."""
    moved = {
        k: (v.to(device, dtype) if k.startswith("pixel_values") else v.to(device)) if isinstance(v, torch.Tensor) else v
        for k, v in item.inputs.items()
    }
    return BenchInput(item.name, moved, item.video_tokens, item.reference, item.object_mask, item.reference_slots)

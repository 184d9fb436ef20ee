"""The command line shared by the family scripts of this folder (``qwen2_5_vl.py``, ``qwen3_vl.py``, ...).

A family script names its model class, its default checkpoints and how its family samples video frames; this
module does the rest: load the pair and the target's processor, decode the video with PyAV (the ``video`` extra),
render the prompt with the processor's own chat template, run speculative decoding with a pruned draft video, and
print the answer and ``specvlm_hf.last_stats``. ``--check-lossless`` also runs the target alone and says whether
the two outputs are identical.

Why frames are decoded here and not by passing the path to ``apply_chat_template``: transformers 5.23 decodes video
paths with torchcodec (which needs system FFmpeg) or torchvision's video API (removed in torchvision 0.26), never
with PyAV. ``transformers.video_utils.load_video(..., backend="pyav")`` does decode them, and the processor accepts
the frames together with their metadata (frame rate and sampled indices, which Qwen uses for positions and
timestamps).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoProcessor
from transformers.video_utils import VideoMetadata, default_sample_indices_fn, load_video

import specvlm_hf

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
SELF = "self"  # --draft self: the target drafts for itself on the pruned video (self-speculation)


@dataclass(frozen=True)
class Family:
    """What differs between the family scripts."""

    model_class: type  # e.g. transformers.Qwen2_5_VLForConditionalGeneration
    target: str  # default target checkpoint (hub id or local dir)
    draft: str  # default draft checkpoint, or "self"
    fps: float | None = None  # frames sampled per second of video ...
    num_frames: int | None = None  # ... or this many frames, evenly spaced


def parse_args(family: Family, description: str, argv: Sequence[str] | None) -> argparse.Namespace:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=description, formatter_class=_HelpFormatter)
    parser.add_argument("--target", default=family.target, help="target (verifier) checkpoint: hub id or local dir")
    parser.add_argument("--draft", default=family.draft,
                        help=f"draft checkpoint of the same family, or '{SELF}' (the target drafts for itself)")
    parser.add_argument("--video", required=True, type=Path,
                        help=f"a video file (.mp4, decoded with PyAV) or a folder of frames ({', '.join(IMAGE_SUFFIXES)}"
                             ", in file-name order)")
    parser.add_argument("--question", default="Describe what happens in this video.", help="the user's text")
    sampling = parser.add_mutually_exclusive_group()
    sampling.add_argument("--fps", type=float, help="frames sampled per second of video; without --fps and "
                                                    f"--num-frames: {_sampling(family)}")
    sampling.add_argument("--num-frames", type=int, help="frames sampled, evenly spaced (instead of --fps)")
    parser.add_argument("--folder-fps", type=float, default=2.0,
                        help="frame rate at which the images of a --video folder were taken")
    parser.add_argument("--keep-ratio", type=float, default=0.1, help="share of the video tokens the draft sees")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="generate at most this many tokens")
    parser.add_argument("--sample", action="store_true",
                        help="sample (do_sample=True, with the target's generation config) instead of greedy decoding")
    parser.add_argument("--seed", type=int, default=0, help="torch seed for --sample")
    parser.add_argument("--check-lossless", action="store_true",
                        help="also run the target alone (greedy) and report whether the outputs are identical")
    parser.add_argument("--device", default="cuda" if cuda else "cpu", help="where both models run")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bfloat16" if cuda else "float32",
                        help="exact equality with the target alone is guaranteed in float32")
    args = parser.parse_args(argv)
    if args.check_lossless and args.sample:
        parser.error("--check-lossless compares greedy outputs token for token; sampled outputs have the target's "
                     "distribution but are not seed-identical. Drop --sample or --check-lossless.")
    if args.num_frames is not None and args.num_frames < 1 or args.fps is not None and args.fps <= 0:
        parser.error("--num-frames must be >= 1 and --fps > 0")
    if args.fps is None and args.num_frames is None:
        args.fps, args.num_frames = family.fps, family.num_frames
    return args


def _sampling(family: Family) -> str:
    if family.num_frames is not None:
        return f"{family.num_frames} frames"
    return f"{family.fps:g} per second"


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in --help (except None and False), and the script's docstring with its usage examples as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def load_clip(path: Path, *, fps: float | None, num_frames: int | None, folder_fps: float = 2.0
              ) -> tuple[np.ndarray, VideoMetadata]:
    """``(frames, metadata)`` of a video file or a folder of frames: uint8 ``(T, H, W, 3)`` RGB frames, sampled at
    ``fps`` frames per second or as ``num_frames`` evenly spaced frames (capped at the clip's length), or every
    frame when both are None. ``metadata`` records the clip's frame rate and the sampled indices."""

    def sample_indices(metadata: VideoMetadata, **_: Any) -> np.ndarray:
        if metadata.total_num_frames < 1:  # PyAV reads the count from the container; Matroska/WebM do not store it
            raise SystemExit(f"--video {path}: the container does not say how many frames it has; convert it to "
                             ".mp4 or pass a folder of frames")
        frames = None if num_frames is None else min(num_frames, metadata.total_num_frames)
        return default_sample_indices_fn(metadata, num_frames=frames, fps=None if frames else fps)

    if path.is_dir():
        images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise SystemExit(f"--video {path}: the folder holds no frames ({', '.join(IMAGE_SUFFIXES)})")
        from PIL import Image

        metadata = VideoMetadata(total_num_frames=len(images), fps=folder_fps, duration=len(images) / folder_fps)
        indices = sample_indices(metadata)
        frames = [np.asarray(Image.open(images[i]).convert("RGB")) for i in indices]
        if len({f.shape for f in frames}) > 1:
            raise SystemExit(f"--video {path}: the frames differ in size ({sorted({f.shape for f in frames})})")
        video = np.stack(frames)
        metadata.update({"frames_indices": indices, "height": video.shape[1], "width": video.shape[2]})
        return video, metadata
    if not path.is_file():
        raise SystemExit(f"--video {path}: no such file or folder")
    video, metadata = load_video(str(path), backend="pyav", sample_indices_fn=sample_indices)
    return video, metadata


def build_inputs(processor: Any, frames: np.ndarray, metadata: VideoMetadata, question: str) -> Any:
    """The processor's chat template and processing for one video question (the frames are already sampled)."""
    messages = [{"role": "user", "content": [{"type": "video", "video": frames}, {"type": "text", "text": question}]}]
    return processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt",
        processor_kwargs={"video_metadata": [metadata], "do_sample_frames": False})


def load_model(family: Family, name: str, args: argparse.Namespace) -> torch.nn.Module:
    # sdpa: the verifier's attention capture wraps the sdpa and eager kernels.
    return family.model_class.from_pretrained(
        name, dtype=DTYPES[args.dtype], attn_implementation="sdpa", device_map=args.device).eval()


def first_difference(a: torch.Tensor, b: torch.Tensor) -> int:
    """Index of the first position where two 1-D token sequences differ (the shorter length if one is a prefix)."""
    length = min(len(a), len(b))
    differ = (a[:length] != b[:length]).nonzero()
    return int(differ[0]) if len(differ) else length


def main(family: Family, description: str, argv: Sequence[str] | None = None) -> int:
    """Run one family script; returns the exit code (1 when --check-lossless finds a difference in float32)."""
    args = parse_args(family, description, argv)
    frames, metadata = load_clip(args.video, fps=args.fps, num_frames=args.num_frames, folder_fps=args.folder_fps)
    target = load_model(family, args.target, args)
    draft = target if args.draft == SELF else load_model(family, args.draft, args)
    processor = AutoProcessor.from_pretrained(args.target)
    inputs = build_inputs(processor, frames, metadata, args.question).to(target.device, dtype=target.dtype)
    prompt_length = inputs["input_ids"].shape[1]
    print(f"target {args.target}, draft {args.draft}; video {args.video}: {len(frames)} frames of "
          f"{frames.shape[2]}x{frames.shape[1]}")

    # do_sample is always explicit: some checkpoints' generation configs sample by default (Qwen2.5-VL's does).
    options = {"max_new_tokens": args.max_new_tokens, "do_sample": args.sample}
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    output = target.generate(**inputs, **options, assistant_model=draft,
                             video_pruning=specvlm_hf.PruneConfig(keep_ratio=args.keep_ratio))
    seconds = time.perf_counter() - start
    stats = specvlm_hf.last_stats(target)
    print("Output:", processor.batch_decode(output[:, prompt_length:], skip_special_tokens=True)[0])
    print(f"Speculative decoding: {seconds:.2f} s; the draft saw {stats.kept_video_tokens} of "
          f"{stats.video_tokens} video tokens")
    print(stats)
    if not args.check_lossless:
        return 0

    start = time.perf_counter()
    reference = target.generate(**inputs, **options)
    print(f"Target alone: {(time.perf_counter() - start):.2f} s (single runs, the first one includes warm-up; "
          "measure speed with specvlm-bench)")
    if torch.equal(output, reference):
        print("Identical to target-only output: yes")
        return 0
    at = first_difference(output[0, prompt_length:], reference[0, prompt_length:])
    print(f"Identical to target-only output: NO (first difference at generated token {at})")
    print("Target alone:", processor.batch_decode(reference[:, prompt_length:], skip_special_tokens=True)[0])
    if args.dtype != "float32":
        print(f"In {args.dtype} this can happen without a bug: a multi-token verification forward and a one-token "
              "forward round differently and can flip a near-tie argmax, as in stock assisted generation. Equality "
              "is guaranteed in float32: rerun with --dtype float32.")
        return 0
    return 1

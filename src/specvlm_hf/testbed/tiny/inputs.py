"""Real processors around the local tokenizers, synthetic videos, video files, and generate-ready inputs."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .table import tiny_family
from .tokenizer import build_tiny_tokenizer


def build_processor(
    model_type: str = "qwen2_5_vl",
    *,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    vision_geometry: Mapping[str, Any] | None = None,
) -> Any:
    """The family's real processor class around the local tokenizer, real chat template and real image/video processors.

    Qwen2-VL / Qwen2.5-VL: ``min_pixels`` / ``max_pixels`` bound each frame's (and image's) area before patching; the
    defaults (112² .. 168²) make a 56 px frame upscale to 112 px (16 tokens per 2 frames) and cap frames at 168 px
    (36 tokens per 2 frames), so 4-8 frame test videos give ~30-150 video tokens. The real checkpoints use
    3136 .. 12845056 for images (and 100352 .. 602112 for video frames).
    Qwen3-VL (patch 16, so 32 px per merged token): they bound each image, and -- as in the real
    ``Qwen3VLVideoProcessor`` -- the whole clip (frames x pixels) for videos; the defaults (4 x 128² .. 8 x 192²) make
    a 4x56x56 clip 4x128x128 (32 tokens) and leave frames up to ~260 px alone (8x168x224: 140 tokens). Each video
    becomes per-frame-pair blocks ``<t seconds><|vision_start|><|video_pad|>*n<|vision_end|>``.
    LLaVA-OneVision and LLaVA-NeXT-Video ignore them: every frame is resized to the vision tower's square input
    (OneVision: 98 px, 16 tokens per frame plus one newline token per video; NeXT-Video: 112 px, 8x8 patches pooled
    to 4x4 = 16 tokens per frame, no newline). ``vision_geometry`` overrides the family's entries, e.g.
    ``{"image_size": 84}`` for LLaVA frames resized (NeXT-Video: cropped) to 84 px instead of the tower's size.
    """
    spec = tiny_family(model_type, vision_geometry)
    return spec.make_processor(
        spec,
        build_tiny_tokenizer(model_type),
        spec.min_pixels if min_pixels is None else min_pixels,
        spec.max_pixels if max_pixels is None else max_pixels,
    )


_COLOURS = np.array(
    [[230, 40, 40], [40, 200, 60], [50, 90, 230], [240, 220, 40], [240, 240, 240], [240, 140, 30], [160, 60, 200]],
    dtype=np.uint8,
)


def make_video(num_frames: int = 4, height: int = 56, width: int = 56, seed: int = 0) -> np.ndarray:
    """A uint8 ``(T, H, W, 3)`` clip: a coloured square moving in a straight line (bouncing) over a dark, noisy field.

    Deterministic given the arguments; different seeds give different colours, sizes, start points and velocities,
    so different frames (and different videos) produce different vision features.
    """
    if num_frames < 1 or height < 8 or width < 8:
        raise ValueError(f"need num_frames >= 1 and frames >= 8x8, got {num_frames}x{height}x{width}")
    rng = np.random.default_rng(seed)
    background = rng.integers(10, 60, size=3)
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    noise = rng.integers(-8, 9, size=(num_frames, height, width, 3))
    side = max(4, int(min(height, width) * rng.uniform(0.2, 0.35)))
    colour = _COLOURS[rng.integers(len(_COLOURS))]
    pos = np.array([rng.uniform(0, height - side), rng.uniform(0, width - side)])
    vel = rng.uniform(0.08, 0.2, size=2) * np.array([height, width]) * rng.choice([-1, 1], size=2)
    limit = np.array([height - side, width - side], dtype=float)
    for t in range(num_frames):
        frame = np.clip(background + noise[t], 0, 255)
        y, x = (int(round(v)) for v in pos)
        frame[y : y + side, x : x + side] = colour
        frames[t] = frame
        pos = pos + vel
        for axis in range(2):  # bounce off the edges
            if pos[axis] < 0 or pos[axis] > limit[axis]:
                vel[axis] = -vel[axis]
                pos[axis] = float(np.clip(pos[axis], 0, limit[axis]))
    return frames


def write_video_file(
    path: str | os.PathLike[str],
    frames: np.ndarray | Sequence[np.ndarray],
    *,
    fps: float = 2.0,
    codec: str | None = None,
) -> Path:
    """Encode uint8 THWC ``frames`` to ``path`` with PyAV and return the path.

    ``codec=None`` picks by suffix: ``.mkv`` -> ``ffv1`` in RGB (lossless: decoded frames equal the input), anything
    else (``.mp4``, ``.avi``, ...) -> ``mpeg4`` in yuv420p (lossy, readable everywhere). Frame sides must be even for
    yuv420p.
    """
    from fractions import Fraction

    import av

    path = Path(path)
    array = np.asarray(frames)
    if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {array.dtype} {array.shape}")
    if codec is None:
        codec = "ffv1" if path.suffix.lower() == ".mkv" else "mpeg4"
    rate = Fraction(fps).limit_denominator(1000)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = int(array.shape[2]), int(array.shape[1])
        stream.pix_fmt = "bgr0" if codec == "ffv1" else "yuv420p"
        if codec == "mpeg4":
            stream.options = {"qscale": "2"}  # near-lossless enough for visual checks
        for frame in array:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def read_video_file(path: str | os.PathLike[str]) -> tuple[np.ndarray, dict[str, Any]]:
    """Decode every frame of ``path`` with PyAV: ``(uint8 THWC frames, metadata dict)``.

    :func:`make_inputs` uses this for paths. In transformers 5.23 a path given to ``apply_chat_template`` reaches
    ``BaseVideoProcessor.fetch_videos``, which decodes only with torchcodec or torchvision's video API (removed in
    torchvision 0.26), so without torchcodec it raises ImportError. ``transformers.video_utils.load_video(path,
    backend="pyav")`` works for .mp4 but not for Matroska files (it trusts the container's frame count, which .mkv
    does not store, and samples zero frames), hence this small decoder.
    """
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        frames = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(stream)])
    fps = float(rate) if rate else None
    meta = {
        "total_num_frames": int(frames.shape[0]),
        "fps": fps,
        "duration": frames.shape[0] / fps if fps else None,
        "frames_indices": list(range(frames.shape[0])),
        "height": int(frames.shape[1]),
        "width": int(frames.shape[2]),
    }
    return frames, meta


VideoLike = np.ndarray | Sequence[np.ndarray] | str | os.PathLike


def _frames_metadata(frames: np.ndarray, fps: float) -> dict[str, Any]:
    """VideoMetadata fields for in-memory frames shown at ``fps`` (no frame sampling: every frame is used)."""
    num = int(frames.shape[0])
    return {
        "total_num_frames": num,
        "fps": float(fps),
        "duration": num / float(fps),
        "frames_indices": list(range(num)),
        "height": int(frames.shape[1]),
        "width": int(frames.shape[2]),
    }


def _is_single_video(video: Any) -> bool:
    if isinstance(video, (str, os.PathLike)):
        return True
    if isinstance(video, np.ndarray):
        return video.ndim == 4
    if isinstance(video, torch.Tensor):
        return video.ndim == 4
    # a list of frames (3-D) is one video; a list of 4-D arrays / paths is several
    first = video[0]
    return isinstance(first, (np.ndarray, torch.Tensor)) and first.ndim == 3


def make_inputs(
    processor: Any,
    *,
    video: VideoLike | Sequence[VideoLike] | None = None,
    question: str = "Describe the video.",
    question_first: bool = False,
    num_videos: int = 1,
    image: Any = None,
    fps: float = 2.0,
    add_vision_id: bool = False,
) -> Any:
    """Render the real chat template for a one-turn video question and process it: a ``BatchFeature`` for generate.

    Args:
        processor: from :func:`build_processor` (or any processor of the same family).
        video: one video (uint8 THWC array or tensor, list of HWC frames, or a file path) or a list of them; all
            given videos are used. If fewer than ``num_videos`` are given, the rest are ``make_video(seed=i)`` clips
            (i = their index) at the first video's size, or 4x56x56 when none is given.
        question: the user text.
        question_first: put the text before the video(s) instead of after (after is the usual layout; before puts
            every query token of the verifier-guided scoring in the template suffix). Only templates that keep the
            content order honour it (the Qwen ones): the LLaVA templates render images, then videos, then text,
            whatever the order.
        num_videos: minimum number of videos in the turn (0 with ``video=None`` gives a text/image-only prompt).
        image: optional image (HWC uint8 array or PIL image), placed before the videos.
        fps: the frame rate the in-memory frames stand for. It sets ``second_per_grid_ts`` (= temporal_patch_size /
            fps; 1.0 at the default 2 fps, the rate Qwen2.5-VL samples videos at) and Qwen3-VL's timestamps (its
            processor also re-samples to 2 fps: at the default every frame is kept). Paths use the file's own rate.
        add_vision_id: the template's "Video 1: " labels.

    Returns the processor's ``BatchFeature``: ``input_ids``, ``attention_mask``, ``pixel_values_videos``, plus
    ``video_grid_thw`` and ``mm_token_type_ids`` (Qwen families), ``second_per_grid_ts`` (Qwen2.5-VL), and the image
    tensors when ``image`` is given. All videos must have the same number of frames for the LLaVA families (their
    ``pixel_values_videos`` is one stacked tensor).
    """
    if num_videos < 0:
        raise ValueError(f"num_videos must be >= 0, got {num_videos}")
    if video is None:
        given: list[Any] = []
    elif _is_single_video(video):
        given = [video]
    else:
        given = list(video)  # type: ignore[arg-type]

    frames_list: list[np.ndarray] = []
    metadata: list[dict[str, Any]] = []
    for v in given:
        if isinstance(v, (str, os.PathLike)):
            frames, meta = read_video_file(v)  # the file's own frame rate
        else:
            frames = (
                np.asarray(v) if isinstance(v, (np.ndarray, torch.Tensor)) else np.stack([np.asarray(f) for f in v])
            )
            meta = _frames_metadata(frames, fps)
        frames_list.append(frames)
        metadata.append(meta)
    # Top up to num_videos with synthetic clips of the first video's size (distinct seeds -> distinct contents).
    t, h, w = frames_list[0].shape[:3] if frames_list else (4, 56, 56)
    for i in range(len(frames_list), num_videos):
        frames_list.append(make_video(t, h, w, seed=i))
        metadata.append(_frames_metadata(frames_list[-1], fps))

    content: list[dict[str, Any]] = []
    text_block = {"type": "text", "text": question}
    if question_first:
        content.append(text_block)
    if image is not None:
        content.append({"type": "image", "image": image})
    content.extend({"type": "video", "video": frames} for frames in frames_list)
    if not question_first:
        content.append(text_block)
    messages = [{"role": "user", "content": content}]

    processor_kwargs: dict[str, Any] = {}
    if frames_list:
        processor_kwargs["video_metadata"] = metadata
    template_kwargs = {"add_vision_id": True} if add_vision_id else {}
    return processor.apply_chat_template(
        messages,
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        processor_kwargs=processor_kwargs,
        **template_kwargs,
    )


def video_placeholder_count(inputs: Any, model_type: str = "qwen2_5_vl") -> int:
    """Number of video placeholder tokens in ``inputs["input_ids"]`` (all rows)."""
    return int((inputs["input_ids"] == tiny_family(model_type).video_token_id).sum())

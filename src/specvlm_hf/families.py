"""Per-architecture facts, in ONE table keyed by ``config.model_type``.

Every difference between model families lives here; the rest of the package reads these entries and never
branches on a family name. Adding a family is adding one `FamilySpec` to `FAMILIES`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch


@dataclass(frozen=True)
class FamilySpec:
    """What specvlm-hf needs to know about one VLM architecture.

    Attributes:
        model_type: ``config.model_type`` of the top-level model.
        video_token_attr / image_token_attr: config attributes holding the placeholder token ids.
        video_inputs / image_inputs: raw ``generate`` kwargs that feed the vision tower (snapshotted before
            ``generate`` pops them, so the draft can run its own tower).
        compatibility: dotted config attributes that must be equal between target and draft for the draft to
            accept the same raw video with the same placeholder count, layout and position scheme.
        video_token_counts: placeholders each video of the prompt expands to, from the config and the raw
            inputs (the pruning budget is global but keeps at least one token per video).
    """

    model_type: str
    video_inputs: tuple[str, ...]
    image_inputs: tuple[str, ...]
    compatibility: tuple[str, ...]
    video_token_counts: Callable[[Any, Mapping[str, Any]], list[int]]
    # Every supported family exposes these names (LLaVA configs map them to *_token_index).
    video_token_attr: str = "video_token_id"
    image_token_attr: str | None = "image_token_id"

    def video_token_id(self, config: Any) -> int:
        return int(getattr(config, self.video_token_attr))

    def image_token_id(self, config: Any) -> int | None:
        if self.image_token_attr is None:
            return None
        value = getattr(config, self.image_token_attr, None)
        return None if value is None else int(value)

    def visual_token_ids(self, config: Any) -> list[int]:
        """The placeholder ids of everything the model sees: the video's and, if the family has them, the image's."""
        image = self.image_token_id(config)
        return [self.video_token_id(config)] + ([] if image is None else [image])

    @property
    def raw_inputs(self) -> tuple[str, ...]:
        return self.video_inputs + self.image_inputs


def _grid_token_counts(config: Any, raw_inputs: Mapping[str, Any]) -> list[int]:
    """Qwen-VL: each video is a (t, h, w) patch grid merged spatially by ``spatial_merge_size``²."""
    grid = raw_inputs.get("video_grid_thw")
    if grid is None:
        return []
    merge = config.vision_config.spatial_merge_size
    return [int(n) for n in (grid.prod(dim=-1) // merge**2).tolist()]


def _llava_onevision_token_counts(config: Any, raw_inputs: Mapping[str, Any]) -> list[int]:
    """LLaVA-OneVision: every frame is pooled to ceil(g/2)² tokens (g = patches per side), and each video ends with
    one ``image_newline`` token — a video token like any other."""
    videos = raw_inputs.get("pixel_values_videos")
    if videos is None:
        return []
    side = math.ceil(config.vision_config.image_size // config.vision_config.patch_size / 2)
    return [videos.shape[1] * side * side + 1] * videos.shape[0]


def _llava_next_video_token_counts(config: Any, raw_inputs: Mapping[str, Any]) -> list[int]:
    """LLaVA-NeXT-Video: every frame is pooled by ``spatial_pool_stride`` to (g // stride)² tokens; no newline."""
    videos = raw_inputs.get("pixel_values_videos")
    if videos is None:
        return []
    side = config.vision_config.image_size // config.vision_config.patch_size // config.spatial_pool_stride
    return [videos.shape[1] * side * side] * videos.shape[0]


_QWEN_VISION_GEOMETRY = (
    "video_token_id",
    "image_token_id",
    "vision_start_token_id",
    "vision_end_token_id",
    "vision_config.patch_size",
    "vision_config.spatial_merge_size",
    "vision_config.temporal_patch_size",
    "vision_config.in_channels",
)
_LLAVA_GEOMETRY = (
    "video_token_id",
    "image_token_id",
    "vision_config.image_size",
    "vision_config.patch_size",
    "vision_feature_select_strategy",
    "image_grid_pinpoints",
)

_QWEN2_VL = FamilySpec(
    model_type="qwen2_vl",
    video_inputs=("pixel_values_videos", "video_grid_thw"),
    image_inputs=("pixel_values", "image_grid_thw"),
    compatibility=_QWEN_VISION_GEOMETRY,
    video_token_counts=_grid_token_counts,
)

FAMILIES: dict[str, FamilySpec] = {
    spec.model_type: spec
    for spec in (
        _QWEN2_VL,
        FamilySpec(
            model_type="qwen2_5_vl",
            video_inputs=("pixel_values_videos", "video_grid_thw", "second_per_grid_ts"),
            image_inputs=("pixel_values", "image_grid_thw"),
            # tokens_per_second: the M-RoPE temporal spacing of the video positions.
            compatibility=(*_QWEN_VISION_GEOMETRY, "vision_config.tokens_per_second"),
            video_token_counts=_grid_token_counts,
        ),
        # Qwen3-VL reads the same inputs as Qwen2-VL. Its placeholders are split per frame (timestamp text between
        # frames) and its deepstack features are sliced together with the pooled ones (_slice_mm_encoder_output).
        replace(_QWEN2_VL, model_type="qwen3_vl"),
        FamilySpec(
            model_type="llava_onevision",
            video_inputs=("pixel_values_videos", "image_sizes_videos"),
            image_inputs=("pixel_values", "image_sizes", "batch_num_images"),
            compatibility=(*_LLAVA_GEOMETRY, "vision_aspect_ratio"),
            video_token_counts=_llava_onevision_token_counts,
        ),
        FamilySpec(
            model_type="llava_next_video",
            video_inputs=("pixel_values_videos",),
            image_inputs=("pixel_values", "image_sizes"),
            compatibility=(*_LLAVA_GEOMETRY, "spatial_pool_stride"),
            video_token_counts=_llava_next_video_token_counts,
        ),
    )
}


def family_of(model: torch.nn.Module, *, argument: str = "video_pruning") -> FamilySpec:
    """The `FamilySpec` of `model`, or a ``ValueError`` naming the supported model types."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    spec = FAMILIES.get(model_type)
    if spec is None:
        raise ValueError(
            f"`{argument}` supports video LLMs of model_type {sorted(FAMILIES)}, but the model is "
            f"{type(model).__name__} (model_type={model_type!r}). Call generate without `{argument}` for this model."
        )
    return spec


def _get_dotted(config: Any, dotted: str) -> Any:
    value = config
    for part in dotted.split("."):
        value = getattr(value, part, None)
    if isinstance(value, list):
        value = tuple(value)
    return value


def check_draft_compatible(target: torch.nn.Module, draft: torch.nn.Module) -> FamilySpec:
    """Raise ``ValueError`` unless `draft` can draft for `target` on a pruned video (DESIGN.md §3).

    Vocabulary sizes may differ (padding only, e.g. Qwen2.5-VL 7B vs 3B): draft logits are padded or truncated
    to the target vocabulary.
    """
    spec = family_of(target)
    draft_type = getattr(draft.config, "model_type", None)
    if draft_type != spec.model_type:
        raise ValueError(
            f"`assistant_model` must be of the same family as the target for video_pruning: the target is "
            f"{spec.model_type!r} but the draft is {draft_type!r} ({type(draft).__name__}). Use a smaller "
            f"checkpoint of the target's family (e.g. Qwen2.5-VL-3B for Qwen2.5-VL-7B)."
        )
    mismatches = []
    for attr in spec.compatibility:
        t_value, d_value = _get_dotted(target.config, attr), _get_dotted(draft.config, attr)
        if t_value != d_value:
            mismatches.append(f"{attr}: target={t_value!r}, draft={d_value!r}")
    if mismatches:
        raise ValueError(
            "`assistant_model` is incompatible with the target for video_pruning: it must read the same raw video "
            "into the same placeholders and positions, but " + "; ".join(mismatches) + ". Use a draft from the "
            "same model family and release as the target."
        )
    return spec

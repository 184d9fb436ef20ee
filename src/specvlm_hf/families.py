"""Per-architecture facts, in ONE table keyed by ``config.model_type``.

Every difference between model families lives here; the rest of the package reads these entries and never
branches on a family name. Adding a family is adding one `FamilySpec` to `FAMILIES`.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch


@dataclass(frozen=True)
class FamilySpec:
    """What specvlm-hf needs to know about one VLM architecture.

    Attributes:
        model_type: ``config.model_type`` of the top-level model.
        video_inputs / image_inputs: raw ``generate`` kwargs that feed the vision tower (snapshotted before
            ``generate`` pops them, so the draft can run its own tower).
        video_pixels / image_pixels: the one kwarg of ``video_inputs`` / ``image_inputs`` that holds the pixels: a
            prompt shows the modality exactly when this tensor is given (the others describe it: grids, sizes,
            frame rates).
        compatibility: dotted config attributes that must be equal between target and draft for the draft to
            accept the same raw video with the same placeholder count, layout and position scheme.
        video_token_counts: placeholders each video of the prompt expands to, from the config and the raw
            inputs (the pruning budget is global but keeps at least one token per video).
        position_id_rows: rows of the position ids ``generate`` prepares for the target's prefill: 4 for M-RoPE
            (shape ``(4, batch, length)``: the text row, then the temporal / height / width rope rows), 1 for 1-D
            RoPE (shape ``(batch, length)``).
        text_position_row: the row of M-RoPE ids that transformers uses for masks and cache positions (not for the
            rotary embedding); it must stay contiguous in the draft's pruned sequence while the rope rows keep
            each kept token's original position. None for 1-D ids, whose one row is both.
        eager_attention_name: the eager attention function the language model's attention module calls, looked
            up by name in that module's own modeling file (transformers defines one per file and does not register
            it in ``ALL_ATTENTION_FUNCTIONS``); see :meth:`eager_attention`.
    """

    model_type: str
    video_inputs: tuple[str, ...]
    image_inputs: tuple[str, ...]
    compatibility: tuple[str, ...]
    video_token_counts: Callable[[Any, Mapping[str, Any]], list[int]]
    position_id_rows: int
    text_position_row: int | None
    video_pixels: str = "pixel_values_videos"
    image_pixels: str = "pixel_values"
    # Every supported family exposes these names (LLaVA configs map them to *_token_index).
    video_token_attr: str = "video_token_id"
    image_token_attr: str | None = "image_token_id"
    eager_attention_name: str = "eager_attention_forward"

    def __post_init__(self) -> None:
        if self.video_pixels not in self.video_inputs or self.image_pixels not in self.image_inputs:
            raise ValueError(
                f"FamilySpec({self.model_type!r}): video_pixels / image_pixels must be among video_inputs / "
                f"image_inputs, got {self.video_pixels!r} in {self.video_inputs} and {self.image_pixels!r} in "
                f"{self.image_inputs}."
            )
        if self.text_position_row is not None and not 0 <= self.text_position_row < self.position_id_rows:
            raise ValueError(
                f"FamilySpec({self.model_type!r}): text_position_row={self.text_position_row} is not one of the "
                f"{self.position_id_rows} position-id rows."
            )

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

    def pixel_input(self, modality: Literal["image", "video"]) -> str:
        """The kwarg holding the pixels of `modality` ("image" or "video")."""
        if modality not in ("image", "video"):
            raise ValueError(f"modality must be 'image' or 'video', got {modality!r}")
        return self.video_pixels if modality == "video" else self.image_pixels

    def position_rows(self, position_ids: torch.Tensor) -> torch.Tensor:
        """`position_ids` as prepared by ``generate`` viewed as ``(rows, batch, length)``, checked against the family's
        layout (:attr:`position_id_rows`); a ``ValueError`` when generate prepared another layout."""
        rows = position_ids if position_ids.ndim == 3 else position_ids[None]
        if position_ids.ndim not in (2, 3) or rows.shape[0] != self.position_id_rows:
            raise ValueError(
                f"{self.model_type!r} models get {self.position_id_rows}-row position ids from generate, but the "
                f"prepared position_ids have shape {tuple(position_ids.shape)}. Was the target's generate (or its "
                f"position-id preparation) patched? Pass the processor's full output to generate."
            )
        return rows

    def eager_attention(self, attention_module: torch.nn.Module) -> Callable:
        """The eager attention function `attention_module` calls under ``attn_implementation="eager"``: the
        :attr:`eager_attention_name` of the module's own modeling file (for LLaVA families that is the language
        model's file, e.g. ``modeling_qwen2``). A ``ValueError`` naming the file when it defines none."""
        module_name = type(attention_module).__module__
        function = getattr(sys.modules.get(module_name), self.eager_attention_name, None)
        if not callable(function):
            raise ValueError(
                f"video_pruning captures the eager attention of {self.model_type!r} targets by calling the "
                f"`{self.eager_attention_name}` of the attention module's own modeling file, but {module_name} "
                f"(defining {type(attention_module).__name__}) has none. Load the target with "
                f"attn_implementation='sdpa', or set FamilySpec.eager_attention_name for this family."
            )
        return function


def _grid_token_counts(config: Any, raw_inputs: Mapping[str, Any]) -> list[int]:
    """Qwen-VL: each video is a (t, h, w) patch grid merged spatially by ``spatial_merge_size``²."""
    grid = raw_inputs.get("video_grid_thw")
    if grid is None:
        return []
    merge = config.vision_config.spatial_merge_size
    return [int(n) for n in (grid.prod(dim=-1) // merge**2).tolist()]


def _llava_onevision_token_counts(config: Any, raw_inputs: Mapping[str, Any]) -> list[int]:
    """LLaVA-OneVision: every frame is pooled to ceil(g/2)² tokens (g = patches per side), and each video ends with
    one ``image_newline`` token — a video token like any other.

    g comes from ``vision_config.image_size``, as in the model: ``apply_pooling`` views the tower's features as the
    config's g x g grid, so frames of any other size cannot run at all (unlike LLaVA-NeXT-Video's pooler).
    """
    videos = raw_inputs.get("pixel_values_videos")
    if videos is None:
        return []
    side = math.ceil(config.vision_config.image_size // config.vision_config.patch_size / 2)
    return [videos.shape[1] * side * side + 1] * videos.shape[0]


def _llava_next_video_token_counts(config: Any, raw_inputs: Mapping[str, Any]) -> list[int]:
    """LLaVA-NeXT-Video: every frame's g x g patch grid is pooled by ``spatial_pool_stride`` s to (g // s)² tokens;
    no newline.

    g comes from the frames the inputs hold (``pixel_values_videos``' height and width over the patch size), not
    from ``vision_config.image_size``: the model's pooler reads the grid off its features (a tower that takes other
    frame sizes pools what it gets), and so does the processor. The pooling floors each side: an odd grid (a 98 px
    frame at patch 14: g = 7) gives 3² = 9 tokens, while transformers' processor writes ⌊g²/4⌋ = 12 placeholders
    per frame; such a prompt disagrees with the model itself and is rejected before decoding.
    """
    videos = raw_inputs.get("pixel_values_videos")
    if videos is None:
        return []
    patch, stride = config.vision_config.patch_size, config.spatial_pool_stride
    rows, cols = (side // patch // stride for side in videos.shape[-2:])
    return [videos.shape[1] * rows * cols] * videos.shape[0]


# Compatibility (docs/design.md §3): what the draft must share with the target to read the same raw video into the same
# placeholders and positions. The draft gets the target's position ids (generate prepares them once, from the
# target's config: grids, spatial_merge_size, tokens_per_second and the start/end ids); each model then applies its
# own rotary embedding to them. So the M-RoPE frequency split (text_config.rope_parameters.mrope_section) and
# Qwen3-VL's interleaving flag are NOT compared: they change how a model turns positions into rotations, never the
# positions, and a draft is only ever run with the rotary layout it was trained with (transformers 5.23 reads the
# interleaving flag nowhere: Qwen3-VL always interleaves). The real pairs share them anyway ([16, 24, 24] for
# Qwen2-VL / Qwen2.5-VL, [24, 20, 20] for Qwen3-VL: tests/real_checkpoints.py).
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
# Qwen M-RoPE: generate prepares (4, batch, length) ids, row 0 the text row. LLaVA: 1-D (batch, length) ids.
_MROPE_POSITIONS = {"position_id_rows": 4, "text_position_row": 0}
_ROPE_1D_POSITIONS = {"position_id_rows": 1, "text_position_row": None}

_QWEN2_VL = FamilySpec(
    model_type="qwen2_vl",
    video_inputs=("pixel_values_videos", "video_grid_thw"),
    image_inputs=("pixel_values", "image_grid_thw"),
    compatibility=_QWEN_VISION_GEOMETRY,
    video_token_counts=_grid_token_counts,
    **_MROPE_POSITIONS,
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
            **_MROPE_POSITIONS,
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
            **_ROPE_1D_POSITIONS,
        ),
        FamilySpec(
            model_type="llava_next_video",
            video_inputs=("pixel_values_videos",),
            image_inputs=("pixel_values", "image_sizes"),
            compatibility=(*_LLAVA_GEOMETRY, "spatial_pool_stride"),
            video_token_counts=_llava_next_video_token_counts,
            **_ROPE_1D_POSITIONS,
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
    """Raise ``ValueError`` unless `draft` can draft for `target` on a pruned video (docs/design.md §3).

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

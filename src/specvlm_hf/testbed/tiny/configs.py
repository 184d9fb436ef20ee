"""How each tiny family's facts become a real transformers config and processor (the family table's factories).

Each ``*_config(spec, arch, vocab_size)`` builds the family's real config class from a :class:`TinyFamily`'s facts
(ids, geometry) and one :class:`TinyArch`'s sizes; each ``*_processor(spec, tokenizer, min_pixels, max_pixels)``
builds the family's real processor class around the local tokenizer. :mod:`.table` wires them to the families.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .table import TinyArch, TinyFamily


def _qwen_mrope_section(head_dim: int) -> list[int]:
    """M-RoPE split of the rotary half-dim in the real 2:3:3 ratio ([16, 24, 24] at head_dim 128)."""
    half = head_dim // 2
    if half % 8:
        raise ValueError(f"head_dim must be a multiple of 16 for a 2:3:3 M-RoPE split, got {head_dim}")
    unit = half // 8
    return [2 * unit, 3 * unit, 3 * unit]


def _text_config(spec: TinyFamily, arch: TinyArch, vocab_size: int, **family_kwargs: Any) -> dict[str, Any]:
    """Text-model kwargs every family sets alike: the sizes of `arch`, the context length and bos / eos of `spec`
    (all SiLU MLPs), plus the family's own `family_kwargs` (norm epsilon, rope, pad id, ...)."""
    return dict(
        vocab_size=vocab_size,
        hidden_size=arch.text_hidden,
        intermediate_size=arch.text_intermediate,
        num_hidden_layers=arch.text_layers,
        num_attention_heads=arch.text_heads,
        num_key_value_heads=arch.text_kv_heads,
        hidden_act="silu",
        max_position_embeddings=spec.max_position_embeddings,
        bos_token_id=spec.bos_token_id,
        eos_token_id=spec.eos_token_id,
        **family_kwargs,
    )


def _qwen_text_config(spec: TinyFamily, arch: TinyArch, vocab_size: int) -> dict[str, Any]:
    """Text-model kwargs shared by Qwen2-VL and Qwen2.5-VL (real values where a size is not involved)."""
    head_dim = arch.text_hidden // arch.text_heads
    return _text_config(
        spec,
        arch,
        vocab_size,
        rms_norm_eps=1e-6,
        use_sliding_window=False,
        sliding_window=32768,
        max_window_layers=arch.text_layers,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 1000000.0,
            "mrope_section": _qwen_mrope_section(head_dim),
        },
        pad_token_id=spec.pad_token_id,
    )


def _qwen_vision_config(spec: TinyFamily, arch: TinyArch, **family_kwargs: Any) -> dict[str, Any]:
    """Vision-tower kwargs of Qwen2.5-VL and Qwen3-VL: `arch`'s tower sizes, the merger projecting to the text width,
    the real geometry of `spec`, plus the family's own `family_kwargs` (activation, window / deepstack blocks)."""
    return dict(
        depth=arch.vision_depth,
        hidden_size=arch.vision_hidden,
        intermediate_size=arch.vision_intermediate,
        num_heads=arch.vision_heads,
        in_channels=3,
        out_hidden_size=arch.text_hidden,
        **family_kwargs,
        **spec.vision_geometry,
    )


def qwen2_5_vl_config(spec: TinyFamily, arch: TinyArch, vocab_size: int) -> Any:
    from transformers import Qwen2_5_VLConfig

    return Qwen2_5_VLConfig(
        text_config=_qwen_text_config(spec, arch, vocab_size),
        vision_config=_qwen_vision_config(
            spec, arch, hidden_act="silu", fullatt_block_indexes=list(arch.vision_fullatt_blocks)
        ),
        # Untied even for the draft (the real 3B ties its embeddings): the lm_head rows are shaped for large logit
        # margins and zeroed outside the emittable ids, which would wreck the input embeddings if tied.
        tie_word_embeddings=False,
        **spec.config_token_ids,
    )


def qwen2_vl_config(spec: TinyFamily, arch: TinyArch, vocab_size: int) -> Any:
    from transformers import Qwen2VLConfig

    if arch.vision_intermediate % arch.vision_hidden:
        raise ValueError("Qwen2-VL's vision MLP width is mlp_ratio * embed_dim: intermediate must be a multiple")
    return Qwen2VLConfig(
        text_config=_qwen_text_config(spec, arch, vocab_size),
        vision_config=dict(
            depth=arch.vision_depth,
            embed_dim=arch.vision_hidden,
            hidden_size=arch.text_hidden,  # Qwen2-VL names the merger's output width "hidden_size"
            hidden_act="quick_gelu",
            mlp_ratio=arch.vision_intermediate // arch.vision_hidden,
            num_heads=arch.vision_heads,
            in_channels=3,
            **spec.vision_geometry,
        ),
        tie_word_embeddings=False,  # the real 2B ties; see qwen2_5_vl_config
        **spec.config_token_ids,
    )


def _qwen_image_video_processors(spec: TinyFamily, min_pixels: int, max_pixels: int) -> tuple[Any, Any]:
    from transformers import Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    geo = spec.vision_geometry
    common = dict(
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        patch_size=geo["patch_size"],
        temporal_patch_size=geo["temporal_patch_size"],
        merge_size=geo["spatial_merge_size"],
    )
    # cap_pixels_per_frame=True is the qwen-vl-utils behaviour (and the announced future default); setting it also
    # silences the "default will change" warning. With tiny frames the total-video budget never binds.
    return Qwen2VLImageProcessor(**common), Qwen2VLVideoProcessor(**common, cap_pixels_per_frame=True)


def _qwen_processor(processor_class: str) -> Callable[[TinyFamily, Any, int, int], Any]:
    """The factory of a Qwen2-VL-style processor (``Qwen2VLProcessor``, ``Qwen2_5_VLProcessor``): the family's real
    class around the Qwen2-VL image and video processors."""

    def make_processor(spec: TinyFamily, tokenizer: Any, min_pixels: int, max_pixels: int) -> Any:
        import transformers

        image_processor, video_processor = _qwen_image_video_processors(spec, min_pixels, max_pixels)
        return getattr(transformers, processor_class)(
            image_processor=image_processor,
            tokenizer=tokenizer,
            video_processor=video_processor,
            chat_template=spec.chat_template,
        )

    return make_processor


qwen2_5_vl_processor = _qwen_processor("Qwen2_5_VLProcessor")
qwen2_vl_processor = _qwen_processor("Qwen2VLProcessor")


def _llava_tower_config(spec: TinyFamily, arch: TinyArch, *, model_type: str, **tower_kwargs: Any) -> dict[str, Any]:
    """Vision-tower kwargs of the LLaVA families (a SigLIP / CLIP-style tower of `model_type`): `arch`'s sizes, the
    real patch size and the (tiny) square input size of `spec`, plus the tower's own `tower_kwargs`."""
    return dict(
        model_type=model_type,
        hidden_size=arch.vision_hidden,
        intermediate_size=arch.vision_intermediate,
        num_hidden_layers=arch.vision_depth,
        num_attention_heads=arch.vision_heads,
        image_size=spec.vision_geometry["image_size"],
        patch_size=spec.vision_geometry["patch_size"],
        **tower_kwargs,
    )


def _llava_onevision_pinpoints(image_size: int) -> list[list[int]]:
    # The real grid is every (i*384, j*384) for i, j in 1..6; scaled to the tiny tile size.
    return [[i * image_size, j * image_size] for i in range(1, 7) for j in range(1, 7)]


def llava_onevision_config(spec: TinyFamily, arch: TinyArch, vocab_size: int) -> Any:
    from transformers import LlavaOnevisionConfig

    geo = spec.vision_geometry
    return LlavaOnevisionConfig(
        text_config=_text_config(
            spec,
            arch,
            vocab_size,
            model_type="qwen2",  # Qwen2-Instruct: 1-D RoPE, theta 1e6
            rms_norm_eps=1e-6,
            use_sliding_window=False,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        ),
        vision_config=_llava_tower_config(
            spec, arch, model_type="siglip_vision_model", vision_use_head=False  # as converted: no pooling head
        ),
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        vision_aspect_ratio="anyres_max_9",
        image_grid_pinpoints=_llava_onevision_pinpoints(geo["image_size"]),
        projector_hidden_act="gelu",
        tie_word_embeddings=False,  # the real 0.5B ties; see qwen2_5_vl_config
        **spec.config_token_ids,
    )


def llava_onevision_processor(spec: TinyFamily, tokenizer: Any, min_pixels: int, max_pixels: int) -> Any:
    # min/max pixels do not apply: LLaVA-OneVision resizes every frame to the vision tower's square input.
    from transformers import LlavaOnevisionImageProcessor, LlavaOnevisionProcessor, LlavaOnevisionVideoProcessor

    side = spec.vision_geometry["image_size"]
    return LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(
            size={"height": side, "width": side}, image_grid_pinpoints=_llava_onevision_pinpoints(side)
        ),
        tokenizer=tokenizer,
        video_processor=LlavaOnevisionVideoProcessor(size={"height": side, "width": side}),
        num_image_tokens=(side // spec.vision_geometry["patch_size"]) ** 2,
        vision_feature_select_strategy="full",
        chat_template=spec.chat_template,
    )


def _qwen3_mrope_section(head_dim: int) -> list[int]:
    """Interleaved M-RoPE split of the rotary half-dim in the real 24:20:20 = 6:5:5 ratio ([24, 20, 20] at head_dim
    128; [6, 5, 5] at the tiny head_dim 32). transformers interleaves T/H/W frequencies (H at 1, 4, 7, ..., W at 2,
    5, 8, ..., T elsewhere), so the ratio, not only the sum, shapes the positions."""
    half = head_dim // 2
    if half % 16:
        raise ValueError(f"head_dim must be a multiple of 32 for a 6:5:5 M-RoPE split, got {head_dim}")
    unit = half // 16
    return [6 * unit, 5 * unit, 5 * unit]


def qwen3_vl_config(spec: TinyFamily, arch: TinyArch, vocab_size: int) -> Any:
    from transformers import Qwen3VLConfig

    return Qwen3VLConfig(
        text_config=_text_config(
            spec,
            arch,
            vocab_size,
            head_dim=arch.head_dim,
            rms_norm_eps=1e-6,
            attention_bias=False,
            rope_parameters={
                "rope_type": "default",
                "rope_theta": 5000000.0,
                "mrope_section": _qwen3_mrope_section(arch.head_dim),
                "mrope_interleaved": True,
            },
            pad_token_id=spec.pad_token_id,
        ),
        vision_config=_qwen_vision_config(
            spec,
            arch,
            hidden_act="gelu_pytorch_tanh",
            num_position_embeddings=2304,  # real: a 48x48 learned grid, bilinearly interpolated to each frame
            deepstack_visual_indexes=list(arch.vision_deepstack_blocks),
        ),
        tie_word_embeddings=False,  # the real 2B/4B tie; see qwen2_5_vl_config
        **spec.config_token_ids,
    )


def qwen3_vl_processor(spec: TinyFamily, tokenizer: Any, min_pixels: int, max_pixels: int) -> Any:
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor, Qwen3VLVideoProcessor

    geo = spec.vision_geometry
    common = dict(
        patch_size=geo["patch_size"],
        temporal_patch_size=geo["temporal_patch_size"],
        merge_size=geo["spatial_merge_size"],
    )
    # preprocessor_config.json: Qwen2VLImageProcessorFast, mean/std 0.5, size 65536 .. 16777216 per image.
    image_processor = Qwen2VLImageProcessor(
        **common, min_pixels=min_pixels, max_pixels=max_pixels, image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5]
    )
    # video_preprocessor_config.json: size {"shortest_edge": 4096, "longest_edge": 25165824}, fps 2, min_frames 4,
    # max_frames 768, do_sample_frames true (all kept: the class defaults). The size bounds the whole clip
    # (frames x pixels) in Qwen3VLVideoProcessor, not each frame. cap_pixels_per_frame=True is the qwen-vl-utils rule
    # (and silences the "default will change" warning).
    video_processor = Qwen3VLVideoProcessor(
        **common, size={"shortest_edge": min_pixels, "longest_edge": max_pixels}, cap_pixels_per_frame=True
    )
    return Qwen3VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=spec.chat_template,
    )


def _llava_next_video_pinpoints(image_size: int) -> list[list[int]]:
    # Real (config.json image_grid_pinpoints): [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]], i.e.
    # these multiples of the 336 px tile; scaled to the tiny tile.
    return [[a * image_size, b * image_size] for a, b in ((1, 2), (2, 1), (2, 2), (3, 1), (1, 3))]


def llava_next_video_config(spec: TinyFamily, arch: TinyArch, vocab_size: int) -> Any:
    from transformers import LlavaNextVideoConfig

    geo = spec.vision_geometry
    tokens_per_side = geo["image_size"] // geo["patch_size"] // geo["spatial_pool_stride"]
    return LlavaNextVideoConfig(
        text_config=_text_config(
            spec,
            arch,
            vocab_size,
            model_type="llama",  # Vicuna-7B-v1.5
            rms_norm_eps=1e-5,
            rope_parameters={"rope_type": "linear", "factor": 2.5, "rope_theta": 10000.0},
            attention_bias=False,
            mlp_bias=False,
            pad_token_id=spec.pad_token_id,
        ),
        vision_config=_llava_tower_config(
            spec,
            arch,
            # CLIP ViT-L/14-336 as in the checkpoint; "dinov2" (which always interpolates its position embeddings) takes
            # frames of another size than image_size, which CLIP refuses.
            model_type=geo["vision_model_type"],
            hidden_act="quick_gelu",
            layer_norm_eps=1e-5,
            projection_dim=arch.vision_hidden,
        ),
        vision_feature_select_strategy="default",  # drop CLS
        vision_feature_layer=-2,
        image_grid_pinpoints=_llava_next_video_pinpoints(geo["image_size"]),
        spatial_pool_mode="average",
        spatial_pool_stride=geo["spatial_pool_stride"],
        projector_hidden_act="gelu",
        multimodal_projector_bias=True,
        image_seq_length=(geo["image_size"] // geo["patch_size"]) ** 2,  # real 576 = 24^2
        video_seq_length=2 * tokens_per_side**2,  # real 288 = 2 x 12^2
        tie_word_embeddings=False,
        **spec.config_token_ids,
    )


def llava_next_video_processor(spec: TinyFamily, tokenizer: Any, min_pixels: int, max_pixels: int) -> Any:
    # min/max pixels do not apply: frames are resized (shortest edge) and centre-cropped to the tower's square input.
    from transformers import LlavaNextImageProcessor, LlavaNextVideoProcessor, LlavaNextVideoVideoProcessor

    side = spec.vision_geometry["image_size"]
    square = {"height": side, "width": side}
    return LlavaNextVideoProcessor(
        video_processor=LlavaNextVideoVideoProcessor(size={"shortest_edge": side}, crop_size=square),
        image_processor=LlavaNextImageProcessor(
            size={"shortest_edge": side}, crop_size=square, image_grid_pinpoints=_llava_next_video_pinpoints(side)
        ),
        tokenizer=tokenizer,
        chat_template=spec.chat_template,
        # processor_config.json: patch 14, "default", +1 for CLIP's CLS (the image count subtracts it again).
        patch_size=spec.vision_geometry["patch_size"],
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )

"""Config builders for the testbed target and draft (Qwen2.5-VL architecture, own vision towers).

Both models share the word-level tokenizer of `vocab.py` (special-token ids set from it) and the
processor geometry (patch 8, merge 2, temporal patch 2). The target is much deeper than the draft so
that one target decode step costs several draft decode steps on a CPU, where per-layer framework
overhead dominates at these sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

from .vocab import MERGE_SIZE, PATCH_SIZE, TEMPORAL_PATCH_SIZE, build_testbed_tokenizer, special_token_ids

# Raw frame arrays reach the processor without metadata, so it assumes 24 fps; one temporal patch
# of 2 frames then lasts 1/12 s and 12 tokens per second give one temporal rope position per group.
TOKENS_PER_SECOND = 12
ROPE_THETA = 50.0


@dataclass(frozen=True)
class Size:
    """Sizes of one model: language model and vision tower."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vision_hidden: int
    vision_depth: int
    vision_heads: int


TARGET = Size(
    hidden=128, layers=12, heads=2, kv_heads=1, intermediate=384, vision_hidden=96, vision_depth=2, vision_heads=3
)
DRAFT = Size(
    hidden=128, layers=1, heads=2, kv_heads=1, intermediate=384, vision_hidden=64, vision_depth=1, vision_heads=2
)


def build_config(size: Size) -> Qwen2_5_VLConfig:
    """A Qwen2.5-VL config of the given size for the testbed tokenizer and processor."""
    ids = special_token_ids(build_testbed_tokenizer())
    head_dim = size.hidden // size.heads
    # M-RoPE splits head_dim/2 rotary frequencies into (temporal, height, width) sections.
    # M-RoPE gives the (temporal, height, width) sections consecutive blocks of the head_dim/2
    # frequencies, highest first. With head_dim 64 and a small base every section still spans
    # position-sharp and slow, content-friendly frequencies (width: 0.18 down to 0.02 rad/token).
    half = head_dim // 2
    mrope = [half * 3 // 16, half // 4, half - half * 3 // 16 - half // 4]
    vocab = len(build_testbed_tokenizer())
    vocab_padded = -(-vocab // 8) * 8  # pad like real checkpoints do (there to 128 multiples)
    text_config = dict(
        vocab_size=vocab_padded,
        hidden_size=size.hidden,
        intermediate_size=size.intermediate,
        num_hidden_layers=size.layers,
        num_attention_heads=size.heads,
        num_key_value_heads=size.kv_heads,
        max_position_embeddings=4096,
        # A small rope base: M-RoPE gives width the lowest frequencies, and with the usual 1e4 base a
        # 6-token-wide grid would be nearly unrotated, leaving "left" vs "right" invisible to the LM.
        # (A base of 5 made position sharp but killed content lookup: colour/shape stayed at chance.)
        rope_parameters={"rope_type": "default", "rope_theta": ROPE_THETA, "mrope_section": mrope},
        bos_token_id=ids["bos_token_id"],
        eos_token_id=ids["eos_token_id"],
        pad_token_id=ids["pad_token_id"],
        tie_word_embeddings=False,
    )
    vision_config = dict(
        depth=size.vision_depth,
        hidden_size=size.vision_hidden,
        intermediate_size=size.vision_hidden * 2,
        num_heads=size.vision_heads,
        patch_size=PATCH_SIZE,
        spatial_merge_size=MERGE_SIZE,
        temporal_patch_size=TEMPORAL_PATCH_SIZE,
        tokens_per_second=TOKENS_PER_SECOND,
        # One window per 96 px frame: window attention would only add many tiny attention calls here.
        window_size=96,
        out_hidden_size=size.hidden,
        fullatt_block_indexes=[size.vision_depth - 1],
    )
    return Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=ids["image_token_id"],
        video_token_id=ids["video_token_id"],
        vision_start_token_id=ids["vision_start_token_id"],
        vision_end_token_id=ids["vision_end_token_id"],
        tie_word_embeddings=False,
    )


def build_model(size: Size, seed: int = 0) -> Qwen2_5_VLForConditionalGeneration:
    """A randomly initialised float32 model (deterministic given the seed)."""
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(build_config(size))
    model.generation_config.pad_token_id = model.config.text_config.pad_token_id
    model.generation_config.eos_token_id = model.config.text_config.eos_token_id
    return model


def build_target(seed: int = 0) -> Qwen2_5_VLForConditionalGeneration:
    """The deep testbed target."""
    return build_model(TARGET, seed)


def build_draft(seed: int = 1) -> Qwen2_5_VLForConditionalGeneration:
    """The shallow testbed draft."""
    return build_model(DRAFT, seed)


def count_parameters(model: torch.nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in model.parameters())

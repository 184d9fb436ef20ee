"""The tiny family table: everything family-specific about the tiny fixtures, keyed by ``config.model_type``.

One :class:`TinyFamily` per family holds the real checkpoints' facts (added tokens and special ids, vocab sizes,
vision geometry, chat template; each with its provenance), the sizes of its tiny (target, draft) pairs
(:class:`TinyPair`, one per :data:`PairShape`) and the factories that turn them into a real transformers config and
processor (:mod:`.configs`). Adding a family means adding one entry to :data:`TINY_FAMILIES`.

The library's own per-family facts (what ``generate(..., video_pruning=...)`` needs) are a different table,
:data:`specvlm_hf.FAMILIES`; this one describes the test fixtures.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

from ..chat_templates import (
    LLAVA_NEXT_VIDEO_CHAT_TEMPLATE,
    LLAVA_ONEVISION_CHAT_TEMPLATE,
    QWEN2_5_VL_CHAT_TEMPLATE,
    QWEN2_VL_CHAT_TEMPLATE,
    QWEN3_VL_CHAT_TEMPLATE,
)
from . import configs

# The 22 added tokens of the Qwen2 / Qwen2-VL / Qwen2.5-VL tokenizers: (id, content, special). Provenance: the
# checkpoints' tokenizer_config.json "added_tokens_decoder" (ids 151643-151664 contiguous; 151657-151664 are
# "special": false there). The model config.json ids (bos 151643, eos 151645, vision_start 151652, vision_end 151653,
# vision 151654, image 151655, video 151656) agree with this table.
QWEN2_ADDED_TOKENS: tuple[tuple[int, str, bool], ...] = (
    (151643, "<|endoftext|>", True),
    (151644, "<|im_start|>", True),
    (151645, "<|im_end|>", True),
    (151646, "<|object_ref_start|>", True),
    (151647, "<|object_ref_end|>", True),
    (151648, "<|box_start|>", True),
    (151649, "<|box_end|>", True),
    (151650, "<|quad_start|>", True),
    (151651, "<|quad_end|>", True),
    (151652, "<|vision_start|>", True),
    (151653, "<|vision_end|>", True),
    (151654, "<|vision_pad|>", True),
    (151655, "<|image_pad|>", True),
    (151656, "<|video_pad|>", True),
    (151657, "<tool_call>", False),
    (151658, "</tool_call>", False),
    (151659, "<|fim_prefix|>", False),
    (151660, "<|fim_middle|>", False),
    (151661, "<|fim_suffix|>", False),
    (151662, "<|fim_pad|>", False),
    (151663, "<|repo_name|>", False),
    (151664, "<|file_sep|>", False),
)

# LLaVA-OneVision (llava-hf): the Qwen2-Instruct tokenizer (3 added tokens) plus "<image>" and "<video>", added as
# special tokens by transformers' convert_llava_onevision_weights_to_hf.py; config.json image_token_index 151646,
# video_token_index 151647.
LLAVA_ONEVISION_ADDED_TOKENS: tuple[tuple[int, str, bool], ...] = (
    *QWEN2_ADDED_TOKENS[:3],  # <|endoftext|>, <|im_start|>, <|im_end|>
    (151646, "<image>", True),
    (151647, "<video>", True),
)

# Qwen3 / Qwen3-VL: the Qwen2 table plus four non-special tokens (ids 151643-151668 contiguous). Provenance: a Qwen3
# tokenizer_config.json / tokenizer.json "added_tokens" (151665 <tool_response>, 151666 </tool_response>, 151667
# <think>, 151668 </think>, all "special": false; additional_special_tokens the same 13 as Qwen2; eos <|im_end|>, pad
# <|endoftext|>, bos null, model_max_length 262144). Qwen3-VL-*-Instruct config.json agrees on the ids it names:
# text_config bos 151643 / eos 151645, vision_start 151652, vision_end 151653, image 151655, video 151656.
QWEN3_ADDED_TOKENS: tuple[tuple[int, str, bool], ...] = (
    *QWEN2_ADDED_TOKENS,
    (151665, "<tool_response>", False),
    (151666, "</tool_response>", False),
    (151667, "<think>", False),
    (151668, "</think>", False),
)

# LLaVA-NeXT-Video-7B (llava-hf): the Llama-2 / Vicuna-7B-v1.5 SentencePiece-BPE vocabulary (<unk> 0, <s> 1, </s> 2,
# byte-fallback pieces <0x00>..<0xFF> at 3..258) plus "<video>" 32000 and "<image>" 32001, added as special tokens by
# transformers' convert_llava_next_video_weights_to_hf.py (video_token_index 32000, image_token_index 32001 there and
# in the checkpoint's config.json; text_config pad_token_id 0, i.e. pad = <unk>). transformers' processor test for the
# checkpoint expects "USER: <video>\nWhat is shown in this video? ASSISTANT:" -> [1, 3148, 1001, 29901, 29871, 32000,
# 13, ...]: BOS prepended, "\n" byte-fallback id 13, "▁" 29871, ":" 29901.
LLAVA_NEXT_VIDEO_ADDED_TOKENS: tuple[tuple[int, str, bool], ...] = (
    (0, "<unk>", True),
    (1, "<s>", True),
    (2, "</s>", True),
    (32000, "<video>", True),
    (32001, "<image>", True),
)


@dataclass(frozen=True)
class TinyArch:
    """Size knobs of one tiny model. Geometry knobs that must match the real checkpoint live in :class:`TinyFamily`."""

    text_hidden: int
    text_layers: int
    text_heads: int
    text_kv_heads: int
    text_intermediate: int
    vision_depth: int
    vision_hidden: int
    vision_heads: int
    vision_intermediate: int
    #: vision blocks with full attention; the others use window attention (Qwen2.5-VL). Real 7B/3B: [7, 15, 23, 31]
    #: of 32, i.e. the last block of every group of 8; with depth 2 we keep the pattern "window, then full".
    vision_fullatt_blocks: tuple[int, ...] = ()
    #: text attention head size when it is not text_hidden // text_heads (Qwen3 sets head_dim explicitly: the real
    #: 4B has 32 heads of 128 on a 2560-wide model). None: text_hidden // text_heads.
    text_head_dim: int | None = None
    #: vision blocks whose outputs feed the deepstack mergers (Qwen3-VL). Real 8B: [8, 16, 24] of 27 blocks; 2B/4B:
    #: [5, 11, 17] of 24 -- three intermediate blocks, never the last one.
    vision_deepstack_blocks: tuple[int, ...] = ()

    @property
    def head_dim(self) -> int:
        return self.text_head_dim or self.text_hidden // self.text_heads

    def resized(self, *, hidden: int | None = None, num_layers: int | None = None) -> TinyArch:
        """A copy with another text hidden size (heads = hidden // 16, the key/value-head ratio kept; an explicit
        ``text_head_dim`` stays) and/or text depth."""
        arch = self
        if hidden is not None:
            if hidden % 16:
                raise ValueError(f"hidden must be a multiple of 16 (head_dim 16), got {hidden}")
            heads = hidden // 16
            arch = replace(
                arch,
                text_hidden=hidden,
                text_heads=heads,
                text_kv_heads=max(1, heads * self.text_kv_heads // self.text_heads),
                text_intermediate=2 * hidden,
            )
        if num_layers is not None:
            if num_layers < 1:
                raise ValueError(f"num_layers must be >= 1, got {num_layers}")
            arch = replace(arch, text_layers=num_layers)
        return arch


#: Which (target, draft) pair of a family :func:`~specvlm_hf.testbed.tiny.build_tiny_pair` builds:
#:
#: - "contrast" (the default): the draft differs from the target in everything a compatible draft may differ in: a
#:   narrower, shallower language model AND its own, narrower vision tower, with the family's padded-vocab split. A
#:   draft that reads the video through a different tower is the hardest case for "the draft sees its own pruned
#:   video", and the padded split exercises the vocab padding.
#: - "real": shaped like the real checkpoint pairs. Qwen2-VL 2B/7B, Qwen2.5-VL 3B/7B and LLaVA-OneVision
#:   0.5B/7B/72B share ONE vision tower architecture (the same depth and width; only the merger / projector output
#:   width, which is the language model's hidden size, differs), so the draft gets the target's tower shape with its
#:   own narrower language model. Qwen3-VL 2B vs 8B really differ (24 x 1024 vs 27 x 1152 towers, deepstack blocks
#:   [5, 11, 17] vs [8, 16, 24], same patch 16 / merge 2 / temporal 2) and share the vocab 151936: the draft's tower
#:   is shallower and narrower and both vocabs are 151936. LLaVA-NeXT-Video has no smaller sibling with its
#:   tokenizer; its "real" pair follows the LLaVA rule (same tower) with the vocab any Vicuna-based conversion gets
#:   (32064 for both). Facts and sources: tests/real_checkpoints.py.
PairShape = Literal["contrast", "real"]


@dataclass(frozen=True)
class TinyPair:
    """The sizes of one tiny (target, draft) pair: each model's :class:`TinyArch` and vocab size."""

    target: TinyArch
    draft: TinyArch
    target_vocab: int
    draft_vocab: int


def _with_tower_of(draft: TinyArch, target: TinyArch) -> TinyArch:
    """`draft`'s language model with `target`'s vision tower (the merger still projects to the draft's own width)."""
    tower = {f.name: getattr(target, f.name) for f in fields(TinyArch) if f.name.startswith("vision_")}
    return replace(draft, **tower)


@dataclass(frozen=True)
class TinyFamily:
    """Everything family-specific: real ids, vocab sizes, geometry, template, pair sizes, and the factories."""

    model_type: str
    #: (id, content, special) for every added token, real ids.
    added_tokens: tuple[tuple[int, str, bool], ...]
    #: the placeholder ids the processor expands (real values).
    image_token_id: int
    video_token_id: int
    #: config kwargs carrying token ids, real values, under the config's own names (e.g. {"image_token_id": 151655}).
    config_token_ids: dict[str, int]
    bos_token_id: int | None
    eos_token_id: int
    pad_token_id: int
    #: generation_config.eos_token_id. Qwen2-VL's generation_config.json lists (151645, 151643); some Qwen2.5-VL
    #: checkpoints (e.g. 32B-Instruct) list 151645 only. The tiny models never emit either id by default.
    generation_eos_token_ids: tuple[int, ...]
    eos_token: str
    pad_token: str
    extra_special_tokens: tuple[str, ...]
    #: first special id: ids below it are ordinary text tokens in the real vocabulary.
    first_special_id: int
    model_max_length: int
    max_position_embeddings: int
    chat_template: str
    #: geometry kept at the real checkpoint's values (patch_size, spatial_merge_size, temporal_patch_size, ...),
    #: passed to the vision config as is.
    vision_geometry: dict[str, Any]
    #: the family's tiny (target, draft) pairs, one per :data:`PairShape`.
    pairs: Mapping[PairShape, TinyPair]
    make_config: Callable[[TinyFamily, TinyArch, int], Any]
    make_processor: Callable[[TinyFamily, Any, int, int], Any]
    #: default pixel bounds per frame/image for build_processor (small, so videos give tens of tokens).
    min_pixels: int = 112 * 112
    max_pixels: int = 168 * 168
    provenance: str = ""
    #: "qwen2": byte-level BPE shaped like Qwen2's; "llama": SentencePiece-style BPE (Metaspace, byte fallback).
    tokenizer_kind: Literal["qwen2", "llama"] = "qwen2"
    #: first ordinary id: ids in [first_ordinary_id, first_special_id) are ordinary text tokens of the real vocabulary.
    first_ordinary_id: int = 0
    bos_token: str | None = None
    unk_token: str | None = None

    def pair(self, shape: PairShape) -> TinyPair:
        """The sizes of the family's `shape` pair; a ``ValueError`` naming the shapes for an unknown one."""
        if shape not in self.pairs:
            raise ValueError(f"shape must be one of {sorted(self.pairs)}, got {shape!r}")
        return self.pairs[shape]


# Both Qwen-VL generations share the Qwen2 tokenizer table, the config-level ids and the tokenizer settings
# (tokenizer_config.json: eos "<|im_end|>", pad "<|endoftext|>", bos null, these additional_special_tokens).
_QWEN_VL_TOKENS: dict[str, Any] = dict(
    added_tokens=QWEN2_ADDED_TOKENS,
    image_token_id=151655,
    video_token_id=151656,
    config_token_ids={
        "image_token_id": 151655,
        "video_token_id": 151656,
        "vision_start_token_id": 151652,
        "vision_end_token_id": 151653,
    },
    bos_token_id=151643,
    eos_token_id=151645,
    pad_token_id=151643,
    generation_eos_token_ids=(151645, 151643),  # Qwen2-VL generation_config.json "eos_token_id"
    eos_token="<|im_end|>",
    pad_token="<|endoftext|>",
    extra_special_tokens=tuple(content for tid, content, _ in QWEN2_ADDED_TOKENS if 151644 <= tid <= 151656),
    first_special_id=151643,
)

# Tiny sizes: head_dim 16 everywhere; the target's language model is wider and deeper than the draft's. In the
# "contrast" pair the draft's vision tower is also narrower (unlike any real pair, on purpose: see PairShape); the
# "real" pair gives the draft the target's tower. Depth-2 towers keep Qwen2.5-VL's "window blocks, then a full block".
_QWEN_TARGET_ARCH = TinyArch(
    text_hidden=64,
    text_layers=3,
    text_heads=4,
    text_kv_heads=2,
    text_intermediate=128,
    vision_depth=2,
    vision_hidden=32,
    vision_heads=2,
    vision_intermediate=64,
    vision_fullatt_blocks=(1,),
)
_QWEN_DRAFT_ARCH = TinyArch(
    text_hidden=32,
    text_layers=2,
    text_heads=2,
    text_kv_heads=1,
    text_intermediate=64,
    vision_depth=2,
    vision_hidden=16,
    vision_heads=1,
    vision_intermediate=32,
    vision_fullatt_blocks=(1,),
)
_QWEN_REAL_DRAFT_ARCH = _with_tower_of(_QWEN_DRAFT_ARCH, _QWEN_TARGET_ARCH)
# Real vocab sizes (config.json "vocab_size"): 152064 for Qwen2-VL-7B / Qwen2.5-VL-7B (and 32B/72B), 151936 for
# Qwen2-VL-2B / Qwen2.5-VL-3B. Both pairs are padded splits, so both shapes keep them.
_QWEN_VL_PAIRS: dict[PairShape, TinyPair] = {
    "contrast": TinyPair(_QWEN_TARGET_ARCH, _QWEN_DRAFT_ARCH, target_vocab=152064, draft_vocab=151936),
    "real": TinyPair(_QWEN_TARGET_ARCH, _QWEN_REAL_DRAFT_ARCH, target_vocab=152064, draft_vocab=151936),
}


def _qwen2_5_vl_spec() -> TinyFamily:
    return TinyFamily(
        model_type="qwen2_5_vl",
        **_QWEN_VL_TOKENS,
        model_max_length=131072,  # tokenizer_config.json
        max_position_embeddings=128000,  # config.json
        chat_template=QWEN2_5_VL_CHAT_TEMPLATE,
        vision_geometry={  # Qwen2.5-VL-7B/3B config.json vision_config values
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
            "tokens_per_second": 2,
        },
        pairs=_QWEN_VL_PAIRS,
        make_config=configs.qwen2_5_vl_config,
        make_processor=configs.qwen2_5_vl_processor,
        provenance=(
            "config.json of Qwen/Qwen2.5-VL-7B-Instruct and -3B-Instruct: bos 151643, eos 151645, vision_start "
            "151652, vision_end 151653, image 151655, video 151656, vocab 152064 / 151936, vision patch 14, merge 2, "
            "temporal patch 2, window 112, tokens_per_second 2; tokenizer_config.json: added tokens 151643-151664; "
            "chat_template.json: see chat_templates.py"
        ),
    )


def _qwen2_vl_spec() -> TinyFamily:
    return TinyFamily(
        model_type="qwen2_vl",
        **_QWEN_VL_TOKENS,
        model_max_length=32768,  # tokenizer_config.json
        max_position_embeddings=32768,  # config.json
        chat_template=QWEN2_VL_CHAT_TEMPLATE,
        vision_geometry={"patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2},  # no window attention
        pairs=_QWEN_VL_PAIRS,
        make_config=configs.qwen2_vl_config,
        make_processor=configs.qwen2_vl_processor,
        provenance=(
            "config.json of Qwen/Qwen2-VL-7B-Instruct and -2B-Instruct: same token ids as Qwen2.5-VL, vocab "
            "152064 / 151936, vision patch 14, merge 2, temporal patch 2, quick_gelu vision MLP; tokenizer_config.json "
            "of Qwen2-VL-2B: eos <|im_end|>, pad <|endoftext|>, bos null, model_max_length 32768"
        ),
    )


def _llava_onevision_spec() -> TinyFamily:
    return TinyFamily(
        model_type="llava_onevision",
        added_tokens=LLAVA_ONEVISION_ADDED_TOKENS,
        image_token_id=151646,
        video_token_id=151647,
        config_token_ids={"image_token_index": 151646, "video_token_index": 151647},
        bos_token_id=151643,
        eos_token_id=151645,
        pad_token_id=151643,
        generation_eos_token_ids=(151645, 151643),  # Qwen2-Instruct generation_config.json
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens=("<|im_start|>", "<|im_end|>"),
        first_special_id=151643,
        model_max_length=32768,
        max_position_embeddings=32768,
        chat_template=LLAVA_ONEVISION_CHAT_TEMPLATE,
        # Real: SigLIP image_size 384, patch 14 -> 27x27 patches, pooled to 14x14 = 196 tokens per frame. Tiny:
        # image_size 98 -> 7x7 patches, pooled to 4x4 = 16 per frame. 7 is odd like 27, so the ceil in the 2x
        # bilinear pooling is exercised the same way; the single trailing image_newline token is kept.
        vision_geometry={"patch_size": 14, "image_size": 98},
        # transformers' conversion script resizes Qwen2's embeddings to vocab + 2 ("<image>", "<video>"), padded to
        # a multiple of 64: Qwen2-7B/72B-Instruct 152064 -> 152128, Qwen2-0.5B-Instruct 151936 -> 152000. All three
        # sizes share the SigLIP tower (1152 wide, 26 layers): the "real" draft gets the target's tower shape.
        pairs={
            "contrast": TinyPair(_QWEN_TARGET_ARCH, _QWEN_DRAFT_ARCH, target_vocab=152128, draft_vocab=152000),
            "real": TinyPair(_QWEN_TARGET_ARCH, _QWEN_REAL_DRAFT_ARCH, target_vocab=152128, draft_vocab=152000),
        },
        make_config=configs.llava_onevision_config,
        make_processor=configs.llava_onevision_processor,
        provenance=(
            "config.json of llava-hf/llava-onevision-qwen2-*-ov-hf: image_token_index 151646, video_token_index "
            "151647, strategy full, layer -1, anyres_max_9; convert_llava_onevision_weights_to_hf.py: chat "
            "template, <image>/<video> added to the Qwen2-Instruct tokenizer, vocab padding to 64, num_image_tokens"
        ),
    )


# head_dim 32 (not 16) so the interleaved M-RoPE split keeps the real 6:5:5 ratio; heads = hidden // 16 as in the
# other families, so the query width (heads x head_dim) is twice the hidden size -- decoupled like the real 4B (32 x
# 128 on 2560). Three deepstack blocks (never the last), like every real Qwen3-VL; the draft's text model is 3 deep so
# all three deepstack features are used in both models.
_QWEN3_TARGET_ARCH = TinyArch(
    text_hidden=64,
    text_layers=4,
    text_heads=4,
    text_kv_heads=2,
    text_intermediate=128,
    vision_depth=4,
    vision_hidden=32,
    vision_heads=2,
    vision_intermediate=64,
    text_head_dim=32,
    vision_deepstack_blocks=(0, 1, 2),
)
_QWEN3_DRAFT_ARCH = TinyArch(
    text_hidden=32,
    text_layers=3,
    text_heads=2,
    text_kv_heads=1,
    text_intermediate=64,
    vision_depth=4,
    vision_hidden=16,
    vision_heads=1,
    vision_intermediate=32,
    text_head_dim=32,
    vision_deepstack_blocks=(0, 1, 2),
)
# Like 8B vs 2B (27 x 1152 vs 24 x 1024 towers, deepstack [8, 16, 24] vs [5, 11, 17]): the real-shaped target's tower
# is deeper and wider than the draft's and takes its deepstack features from other blocks (never the last one).
_QWEN3_REAL_TARGET_ARCH = replace(_QWEN3_TARGET_ARCH, vision_depth=5, vision_deepstack_blocks=(1, 2, 3))


def _qwen3_vl_spec() -> TinyFamily:
    return TinyFamily(
        model_type="qwen3_vl",
        **{**_QWEN_VL_TOKENS, "added_tokens": QWEN3_ADDED_TOKENS},
        model_max_length=262144,  # tokenizer_config.json
        max_position_embeddings=262144,  # config.json text_config
        chat_template=QWEN3_VL_CHAT_TEMPLATE,
        vision_geometry={"patch_size": 16, "spatial_merge_size": 2, "temporal_patch_size": 2},
        # Every dense Qwen3-VL checkpoint (2B/4B/8B/32B-Instruct) has vocab_size 151936: the "real" pair has it on
        # both sides. In the "contrast" pair the TARGET IS PADDED to 152064 (not a real Qwen3-VL size; Qwen2.5-VL-7B's)
        # so that the padded-vocab path (draft logits padded to the target vocab) is exercised for this family too.
        pairs={
            "contrast": TinyPair(_QWEN3_TARGET_ARCH, _QWEN3_DRAFT_ARCH, target_vocab=152064, draft_vocab=151936),
            "real": TinyPair(_QWEN3_REAL_TARGET_ARCH, _QWEN3_DRAFT_ARCH, target_vocab=151936, draft_vocab=151936),
        },
        make_config=configs.qwen3_vl_config,
        make_processor=configs.qwen3_vl_processor,
        # Videos: these bound the whole clip (see configs.qwen3_vl_processor): at least 4 frames of 128^2, so a 4x56x56 clip
        # is upscaled to 128 px (8x8 patches: 16 tokens per 2 frames, 32 in all); with cap_pixels_per_frame the cap
        # is >= 1.05 * min_pixels per frame, so frames up to ~260 px keep their size. Images: per-image bounds
        # (a 56x84 image becomes 224x320: 70 tokens). Real: 4096 .. 25165824 (video), 65536 .. 16777216 (image).
        min_pixels=4 * 128 * 128,
        max_pixels=8 * 192 * 192,
        provenance=(
            "config.json of Qwen/Qwen3-VL-4B-Instruct (and -8B): image 151655, video 151656, vision_start 151652, "
            "vision_end 151653, text bos 151643 / eos 151645, vocab 151936, head_dim 128, rope_theta 5e6, mrope "
            "[24, 20, 20] interleaved, max_position_embeddings 262144; vision patch 16, merge 2, temporal patch 2, "
            "num_position_embeddings 2304, gelu_pytorch_tanh, deepstack [5, 11, 17] (4B) / [8, 16, 24] (8B); "
            "preprocessor / video_preprocessor_config.json: see configs.qwen3_vl_processor; chat_template.json: see "
            "chat_templates.py"
        ),
    )


# Vicuna-7B is plain multi-head attention (32 key/value heads = 32 heads): kv heads = heads here too.
_LLAVA_NEXT_VIDEO_TARGET_ARCH = replace(_QWEN_TARGET_ARCH, text_kv_heads=4, vision_depth=3, vision_fullatt_blocks=())
_LLAVA_NEXT_VIDEO_DRAFT_ARCH = replace(_QWEN_DRAFT_ARCH, text_kv_heads=2, vision_fullatt_blocks=())
_LLAVA_NEXT_VIDEO_REAL_DRAFT_ARCH = _with_tower_of(_LLAVA_NEXT_VIDEO_DRAFT_ARCH, _LLAVA_NEXT_VIDEO_TARGET_ARCH)


def _llava_next_video_spec() -> TinyFamily:
    return TinyFamily(
        model_type="llava_next_video",
        added_tokens=LLAVA_NEXT_VIDEO_ADDED_TOKENS,
        image_token_id=32001,
        video_token_id=32000,
        config_token_ids={"image_token_index": 32001, "video_token_index": 32000},
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        generation_eos_token_ids=(2,),
        eos_token="</s>",
        pad_token="<unk>",
        extra_special_tokens=("<video>", "<image>"),
        first_special_id=32000,
        model_max_length=4096,  # Vicuna-7B-v1.5 tokenizer_config.json
        max_position_embeddings=4096,
        chat_template=LLAVA_NEXT_VIDEO_CHAT_TEMPLATE,
        # Real: CLIP 336 px, patch 14 -> 24x24 patches, average-pooled with stride 2 to 12x12 = 144 tokens per frame,
        # no newline token. Tiny: 112 px -> 8x8 (even, like 24) -> 4x4 = 16 tokens per frame.
        vision_geometry={
            "patch_size": 14,
            "image_size": 112,
            "spatial_pool_stride": 2,
            "vision_model_type": "clip_vision_model",
        },
        # convert_llava_next_video_weights_to_hf.py: resize_token_embeddings(32000 + 3, pad_to_multiple_of=64) ->
        # 32064 (config.json text_config.vocab_size). There is no smaller LLaVA-NeXT-Video with this tokenizer (the
        # 34B is Yi-based). The "contrast" draft takes the UNPADDED size 32003 (not a real checkpoint size): it still
        # embeds <video> 32000 / <image> 32001, and the padded-vocab path is exercised. The "real" draft is what any
        # Vicuna-based sibling converted the same way would be: the target's tower shape and vocab 32064.
        pairs={
            "contrast": TinyPair(
                _LLAVA_NEXT_VIDEO_TARGET_ARCH, _LLAVA_NEXT_VIDEO_DRAFT_ARCH, target_vocab=32064, draft_vocab=32003
            ),
            "real": TinyPair(
                _LLAVA_NEXT_VIDEO_TARGET_ARCH, _LLAVA_NEXT_VIDEO_REAL_DRAFT_ARCH, target_vocab=32064, draft_vocab=32064
            ),
        },
        make_config=configs.llava_next_video_config,
        make_processor=configs.llava_next_video_processor,
        provenance=(
            "config.json of llava-hf/LLaVA-NeXT-Video-7B-hf: video_token_index 32000, image_token_index 32001, vocab "
            "32064, pad 0, strategy default, feature layer -2, spatial_pool_mode average, stride 2, CLIP 336/14 "
            "quick_gelu, Llama rope linear x2.5, max_position_embeddings 4096, rms 1e-5; "
            "convert_llava_next_video_weights_to_hf.py: <video>/<image> added as special tokens, vocab + 3 padded to "
            "64, padding_side left; processor test: BOS + ids 29871 / 32000 / 13 / 29901; template: see "
            "chat_templates.py (reconstructed)"
        ),
        tokenizer_kind="llama",
        first_ordinary_id=3,
        bos_token="<s>",
        unk_token="<unk>",
    )


#: model_type -> TinyFamily. Supported: "qwen2_5_vl", "qwen2_vl", "qwen3_vl", "llava_onevision", "llava_next_video".
TINY_FAMILIES: dict[str, TinyFamily] = {
    spec.model_type: spec
    for spec in (
        _qwen2_5_vl_spec(),
        _qwen2_vl_spec(),
        _qwen3_vl_spec(),
        _llava_onevision_spec(),
        _llava_next_video_spec(),
    )
}


def tiny_family(model_type: str, vision_geometry: Mapping[str, Any] | None = None) -> TinyFamily:
    """The :class:`TinyFamily` of `model_type`; `vision_geometry` entries override the family's (e.g.
    ``{"image_size": 84}`` for LLaVA frames of another size). A ``ValueError`` names the known families."""
    if model_type not in TINY_FAMILIES:
        raise ValueError(f"no tiny fixture for model_type {model_type!r}; known: {sorted(TINY_FAMILIES)}")
    spec = TINY_FAMILIES[model_type]
    if vision_geometry:
        spec = replace(spec, vision_geometry={**spec.vision_geometry, **vision_geometry})
    return spec

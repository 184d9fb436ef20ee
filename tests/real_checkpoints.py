"""Facts of the real checkpoints the families stand for, restated from public copies of their configs (never read from
the code under test), with where each was read. Used by test_families.py and test_tiny_fixtures.py.

Sources (public repositories, read through the code-search index; commit of the stored version in brackets):

- NEMO_VL: NVIDIA/NeMo nemo/collections/vlm/qwen2vl/model/qwen2vl.py [0eed93ab] -- Qwen2VLConfig2B/7B/72B and
  Qwen25VLConfig3B/7B/32B/72B, "copied from the corresponding HF model": every size builds the SAME vision transformer
  (32 layers, 16 heads); the merger's projector takes 5120 (= 1280 x merge 2²) to 1536 / 3584 / 8192 (Qwen2-VL 2B /
  7B / 72B) and 2048 / 3584 / 5120 / 8192 (Qwen2.5-VL 3B / 7B / 32B / 72B), the language model's width.
- NEMO_VL_BASE: NVIDIA/NeMo nemo/collections/vlm/qwen2vl/model/base.py [012da26f] -- Qwen2VLVisionConfig: embed 1280,
  32 layers, 16 heads, ffn 5120, patch 14, spatial merge 2, temporal patch 2; "Qwen2-VL 2B/7B/72B share the same
  mrope_section config" [16, 24, 24], citing the three checkpoints' config.json.
- NEMO_QWEN2: NVIDIA/NeMo nemo/collections/llm/gpt/model/qwen2.py [03823d2a] -- Qwen2 0.5B 896 wide, 1.5B 1536, 7B
  3584, 72B 8192; vocab 151936 (0.5B, 1.5B) and 152064 (7B, 72B). Qwen2-VL-2B's language model is Qwen2-1.5B.
- QWEN25_3B_JSON: a verbatim copy of Qwen/Qwen2.5-VL-3B-Instruct config.json (code-search index file 11644284334; the
  index names no repository for it): vocab 151936, hidden 2048, ids 151652 / 151653 / 151654 / 151655 / 151656,
  vision depth 32, hidden 1280, intermediate 3420, 16 heads, out_hidden_size 2048, patch 14, merge 2, temporal 2,
  window 112, fullatt [7, 15, 23, 31], tokens_per_second 2, mrope_section [16, 24, 24].
- QWEN25_7B_JSON: copies of Qwen/Qwen2.5-VL-7B-Instruct's vision_config (index files 71519602396 "Values are
  Qwen2.5-VL-7B-Instruct's", 16539311453, 51894832843): the same tower as the 3B's with out_hidden_size 3584, vocab
  152064, tokens_per_second 2; and acproject/duorou docs/qwen2.5vl_graph.md (a module print of the 7B: 32 x 1280
  blocks, merger 5120 -> 3584, embed_tokens 152064 x 3584). NB transformers' Qwen2_5_VLVisionConfig defaults
  tokens_per_second to 4: the checkpoints say 2.
- TITAN_QWEN3: pytorch/torchtitan torchtitan/experiments/qwen3_vl/__init__.py [0375bb67] -- Qwen3-VL 2B / 8B:
  vocab 151936 both; language model 2048 x 28 (16 heads, 8 kv) / 4096 x 36 (32 heads, 8 kv), head_dim 128;
  vision tower 24 x 1024 (ffn 4096) / 27 x 1152 (ffn 4304), 16 heads, patch 16, temporal 2, merge 2,
  out_hidden_size 2048 / 4096, deepstack [5, 11, 17] / [8, 16, 24], num_position_embeddings 2304; mrope [24, 20, 20].
- TF_QWEN3_CONFIG: transformers 5.23 configuration_qwen3_vl.py defaults: image 151655, video 151656, vision_start
  151652, vision_end 151653 (the ids of every Qwen-VL generation).
- TF_OV_CONVERT: huggingface/transformers src/transformers/models/llava_onevision/convert_llava_onevision_weights_to_hf.py
  [01080c62] -- llava-onevision-qwen2-0.5b/7b/72b-ov from Qwen2-0.5B/7B/72B-Instruct with ONE SigLIP config for all
  (hidden 1152, image 384, patch 14, intermediate 4304, 16 heads, 26 layers: "drop the last layer"); "<image>" and
  "<video>" added, embeddings resized to vocab + 2 padded to a multiple of 64 (151936 -> 152000, 152064 -> 152128).
  Ids 151646 / 151647: transformers' LlavaOnevisionConfig defaults.
- TF_NV_CONVERT: huggingface/transformers .../llava_next_video/convert_llava_next_video_weights_to_hf.py [01080c62] --
  LLaVA-NeXT-Video-7B from lmsys/vicuna-7b-v1.5, video_token_index 32000, image_token_index 32001, vocab 32000 + 3
  padded to 64 = 32064; the 34B is Yi-based (other tokenizer, ids 64000 / 64001): no smaller sibling shares the 7B's.
- NV_7B_JSON: a printed copy of llava-hf/LLaVA-NeXT-Video-7B-hf config.json (index file 67027561493): CLIP
  336 px / patch 14, 24 x 1024, 16 heads; text 4096 x 32, vocab 32064, rope linear factor 2.5; spatial_pool_stride 2,
  video_seq_length 288, strategy "default", feature layer -2; ids 32000 / 32001.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

QWEN_IDS = {"vision_start_token_id": 151652, "vision_end_token_id": 151653, "image_token_id": 151655,
            "video_token_id": 151656}  # fmt: skip


@dataclass(frozen=True)
class Checkpoint:
    """One real checkpoint: the facts the families depend on and where they were read (see the module docstring)."""

    name: str
    model_type: str
    vocab_size: int
    text_hidden: int
    #: the vision tower's architecture (config names of the family's vision config), merger output excluded
    tower: dict[str, Any]
    #: the merger's / projector's output width: the language model's hidden size
    merger_out: int
    ids: dict[str, int]
    sources: tuple[str, ...]
    #: text_config.rope_parameters["mrope_section"] (M-RoPE families only)
    mrope_section: tuple[int, ...] | None = None
    #: config attributes outside the tower (e.g. LLaVA's spatial_pool_stride)
    extra: dict[str, Any] = field(default_factory=dict)


_QWEN2_VL_TOWER = {"depth": 32, "embed_dim": 1280, "num_heads": 16, "mlp_ratio": 4, "patch_size": 14,
                   "spatial_merge_size": 2, "temporal_patch_size": 2}  # fmt: skip
_QWEN2_5_VL_TOWER = {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16, "patch_size": 14,
                     "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112,
                     "fullatt_block_indexes": [7, 15, 23, 31], "tokens_per_second": 2}  # fmt: skip
_QWEN3_VL_2B_TOWER = {"depth": 24, "hidden_size": 1024, "intermediate_size": 4096, "num_heads": 16, "patch_size": 16,
                      "spatial_merge_size": 2, "temporal_patch_size": 2, "deepstack_visual_indexes": [5, 11, 17]}  # fmt: skip
_QWEN3_VL_8B_TOWER = {"depth": 27, "hidden_size": 1152, "intermediate_size": 4304, "num_heads": 16, "patch_size": 16,
                      "spatial_merge_size": 2, "temporal_patch_size": 2, "deepstack_visual_indexes": [8, 16, 24]}  # fmt: skip
_SIGLIP_OV_TOWER = {"model_type": "siglip_vision_model", "hidden_size": 1152, "image_size": 384, "patch_size": 14,
                    "intermediate_size": 4304, "num_attention_heads": 16, "num_hidden_layers": 26}  # fmt: skip
_CLIP_NV_TOWER = {"model_type": "clip_vision_model", "hidden_size": 1024, "image_size": 336, "patch_size": 14,
                  "intermediate_size": 4096, "num_attention_heads": 16, "num_hidden_layers": 24}  # fmt: skip
_OV_IDS = {"image_token_index": 151646, "video_token_index": 151647}
_NV_IDS = {"video_token_index": 32000, "image_token_index": 32001}

CHECKPOINTS: dict[str, Checkpoint] = {
    c.name: c
    for c in (
        Checkpoint("Qwen/Qwen2-VL-2B-Instruct", "qwen2_vl", 151936, 1536, _QWEN2_VL_TOWER, 1536, QWEN_IDS,
                   ("NEMO_VL", "NEMO_VL_BASE", "NEMO_QWEN2"), mrope_section=(16, 24, 24)),
        Checkpoint("Qwen/Qwen2-VL-7B-Instruct", "qwen2_vl", 152064, 3584, _QWEN2_VL_TOWER, 3584, QWEN_IDS,
                   ("NEMO_VL", "NEMO_VL_BASE", "NEMO_QWEN2"), mrope_section=(16, 24, 24)),
        Checkpoint("Qwen/Qwen2-VL-72B-Instruct", "qwen2_vl", 152064, 8192, _QWEN2_VL_TOWER, 8192, QWEN_IDS,
                   ("NEMO_VL", "NEMO_VL_BASE", "NEMO_QWEN2"), mrope_section=(16, 24, 24)),
        Checkpoint("Qwen/Qwen2.5-VL-3B-Instruct", "qwen2_5_vl", 151936, 2048, _QWEN2_5_VL_TOWER, 2048, QWEN_IDS,
                   ("QWEN25_3B_JSON", "NEMO_VL"), mrope_section=(16, 24, 24)),
        Checkpoint("Qwen/Qwen2.5-VL-7B-Instruct", "qwen2_5_vl", 152064, 3584, _QWEN2_5_VL_TOWER, 3584, QWEN_IDS,
                   ("QWEN25_7B_JSON", "NEMO_VL"), mrope_section=(16, 24, 24)),
        Checkpoint("Qwen/Qwen3-VL-2B-Instruct", "qwen3_vl", 151936, 2048, _QWEN3_VL_2B_TOWER, 2048, QWEN_IDS,
                   ("TITAN_QWEN3", "TF_QWEN3_CONFIG"), mrope_section=(24, 20, 20)),
        Checkpoint("Qwen/Qwen3-VL-8B-Instruct", "qwen3_vl", 151936, 4096, _QWEN3_VL_8B_TOWER, 4096, QWEN_IDS,
                   ("TITAN_QWEN3", "TF_QWEN3_CONFIG"), mrope_section=(24, 20, 20)),
        Checkpoint("llava-hf/llava-onevision-qwen2-0.5b-ov-hf", "llava_onevision", 152000, 896, _SIGLIP_OV_TOWER, 896,
                   _OV_IDS, ("TF_OV_CONVERT", "NEMO_QWEN2")),
        Checkpoint("llava-hf/llava-onevision-qwen2-7b-ov-hf", "llava_onevision", 152128, 3584, _SIGLIP_OV_TOWER, 3584,
                   _OV_IDS, ("TF_OV_CONVERT", "NEMO_QWEN2")),
        Checkpoint("llava-hf/llava-onevision-qwen2-72b-ov-hf", "llava_onevision", 152128, 8192, _SIGLIP_OV_TOWER,
                   8192, _OV_IDS, ("TF_OV_CONVERT", "NEMO_QWEN2")),
        Checkpoint("llava-hf/LLaVA-NeXT-Video-7B-hf", "llava_next_video", 32064, 4096, _CLIP_NV_TOWER, 4096, _NV_IDS,
                   ("TF_NV_CONVERT", "NV_7B_JSON"), extra={"spatial_pool_stride": 2}),
    )
}  # fmt: skip

#: (target, draft) pairs of real checkpoints, per family. LLaVA-NeXT-Video has none (no smaller sibling shares the
#: 7B's tokenizer): only self-speculation.
REAL_PAIRS: dict[str, list[tuple[str, str]]] = {
    "qwen2_vl": [("Qwen/Qwen2-VL-7B-Instruct", "Qwen/Qwen2-VL-2B-Instruct"),
                 ("Qwen/Qwen2-VL-72B-Instruct", "Qwen/Qwen2-VL-7B-Instruct")],
    "qwen2_5_vl": [("Qwen/Qwen2.5-VL-7B-Instruct", "Qwen/Qwen2.5-VL-3B-Instruct")],
    "qwen3_vl": [("Qwen/Qwen3-VL-8B-Instruct", "Qwen/Qwen3-VL-2B-Instruct")],
    "llava_onevision": [("llava-hf/llava-onevision-qwen2-7b-ov-hf", "llava-hf/llava-onevision-qwen2-0.5b-ov-hf"),
                        ("llava-hf/llava-onevision-qwen2-72b-ov-hf", "llava-hf/llava-onevision-qwen2-0.5b-ov-hf")],
    "llava_next_video": [("llava-hf/LLaVA-NeXT-Video-7B-hf", "llava-hf/LLaVA-NeXT-Video-7B-hf")],
}  # fmt: skip


def real_config(name: str) -> Any:
    """A transformers config built from the recorded facts of checkpoint `name` (sizes the facts do not fix keep the
    config class's defaults: only what the families compare and count with is real)."""
    from transformers import LlavaNextVideoConfig, LlavaOnevisionConfig, Qwen2_5_VLConfig, Qwen2VLConfig, Qwen3VLConfig

    c = CHECKPOINTS[name]
    text = {"vocab_size": c.vocab_size, "hidden_size": c.text_hidden}
    if c.mrope_section is not None:
        text["rope_parameters"] = {"rope_type": "default", "mrope_section": list(c.mrope_section)}
    if c.model_type == "qwen2_vl":  # Qwen2-VL names the merger's output width "hidden_size"
        return Qwen2VLConfig(text_config=text, vision_config={**c.tower, "hidden_size": c.merger_out}, **c.ids)
    if c.model_type in ("qwen2_5_vl", "qwen3_vl"):
        config_class = Qwen2_5_VLConfig if c.model_type == "qwen2_5_vl" else Qwen3VLConfig
        if c.model_type == "qwen3_vl":
            text = {**text, "head_dim": 128, "rope_parameters": {**text["rope_parameters"], "mrope_interleaved": True}}
        return config_class(text_config=text, vision_config={**c.tower, "out_hidden_size": c.merger_out}, **c.ids)
    text = {**text, "model_type": "qwen2" if c.model_type == "llava_onevision" else "llama"}
    config_class = LlavaOnevisionConfig if c.model_type == "llava_onevision" else LlavaNextVideoConfig
    return config_class(text_config=text, vision_config=dict(c.tower), **c.ids, **c.extra)


def as_model(name: str) -> SimpleNamespace:
    """A stand-in with the ``config`` (and class name) of checkpoint `name`, for the config-only family checks."""
    return SimpleNamespace(config=real_config(name))

"""Tiny random-weight models of each family, and the (target, draft) pairs the tests draft with.

Why the weights look the way they do (see the package docstring for the full story): every weight is drawn from a
generator seeded by ``(seed, parameter name)``; linear weights have std ``1/sqrt(fan_in)``; the ``lm_head`` rows of
the emittable ids get a large spread and every other row is zero.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from typing import Any, Literal

import torch

from .table import PairShape, tiny_family
from .tokenizer import Emit, emittable_token_ids

Role = Literal["target", "draft"]


def _param_generator(seed: int, name: str) -> torch.Generator:
    # One generator per parameter, keyed by name: adding a layer or resizing one module leaves the others' weights
    # unchanged, and the global RNG is untouched.
    return torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(name.encode())) % (2**63))


@torch.no_grad()
def _init_tiny_weights_(model: torch.nn.Module, *, seed: int, emit_ids: torch.Tensor, logit_std: float) -> None:
    lm_head = model.get_output_embeddings().weight
    kinds: dict[int, str] = {}  # id(param) -> how to initialise it, decided by the module that owns it
    for module in model.modules():
        if isinstance(module, torch.nn.Embedding):
            kinds[id(module.weight)] = "unit"  # token / position embeddings at the scale of the vision features
        elif isinstance(module, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)):
            kinds[id(module.weight)] = "fan_in"
            if module.bias is not None:
                kinds[id(module.bias)] = "zero"
        elif "Norm" in type(module).__name__:  # RMSNorm / LayerNorm of every family
            for pname, param in module.named_parameters(recurse=False):
                kinds[id(param)] = "one" if pname == "weight" else "zero"
    for name, param in model.named_parameters():
        gen = _param_generator(seed, name)
        kind = "lm_head" if param is lm_head else kinds.get(id(param), "unit")  # e.g. LLaVA's image_newline
        if kind == "lm_head":
            hidden = param.shape[1]
            # logit_j = <h, w_j> with RMS-normalised h (|h| ~ sqrt(hidden)): std(w) = logit_std / sqrt(hidden).
            rows = torch.randn(len(emit_ids), hidden, generator=gen) * (logit_std / math.sqrt(hidden))
            param.zero_()
            param[emit_ids] = rows.to(param.dtype)
        elif kind == "zero":
            param.zero_()
        elif kind == "one":
            param.fill_(1.0)
        elif kind == "fan_in":
            param.copy_(torch.randn(param.shape, generator=gen) / math.sqrt(param[0].numel()))
        else:
            param.copy_(torch.randn(param.shape, generator=gen))

def build_tiny_model(
    model_type: str = "qwen2_5_vl",
    role: Role = "target",
    *,
    shape: PairShape = "contrast",
    vocab_size: int | None = None,
    seed: int = 0,
    num_layers: int | None = None,
    hidden: int | None = None,
    attn_implementation: str = "sdpa",
    emit: Emit = "words",
    logit_std: float = 100.0,
    vision_geometry: Mapping[str, Any] | None = None,
) -> torch.nn.Module:
    """A tiny random ``*ForConditionalGeneration`` of ``model_type`` in float32 and eval mode.

    Args:
        model_type: a key of :data:`TINY_FAMILIES`.
        role: "target" or "draft": picks the role's sizes and vocab in the ``shape`` pair of the family.
        shape: which pair (see :data:`PairShape`): "contrast" (default) or "real".
        vocab_size: overrides the role's default vocab size.
        seed: weight seed; the same arguments give bit-identical weights.
        num_layers, hidden: override the text model's depth / hidden size (head_dim stays 16; the vision tower's
            output width follows ``hidden``).
        attn_implementation: "sdpa" (default), "eager", or any registered name; applied to text and vision.
        emit: which ids the lm_head can produce (see :data:`Emit`). Default "words": only whole-word tokens of the
            local tokenizer, all below 1000 (so below every draft vocab), so the target never emits an id the draft
            cannot embed, never a placeholder / special id, and never EOS (generations run to ``max_new_tokens``; pass an explicit
            ``eos_token_id`` to ``generate`` to test stopping).
        logit_std: spread of the emittable logits; large values give large greedy top-2 margins.
        vision_geometry: entries overriding the family's vision geometry (e.g. ``{"image_size": 84}``, or for
            LLaVA-NeXT-Video ``{"vision_model_type": "dinov2"}``: a tower that takes frames of any size).

    The returned model carries the real token ids in its config and a greedy ``generation_config`` with the real
    eos / pad ids. Construction skips transformers' own weight init (it is overwritten anyway).
    """
    from transformers import AutoModelForImageTextToText, GenerationConfig
    from transformers.initialization import no_init_weights

    spec = tiny_family(model_type, vision_geometry)
    if role not in ("target", "draft"):
        raise ValueError(f"role must be 'target' or 'draft', got {role!r}")
    pair = spec.pair(shape)
    arch = (pair.target if role == "target" else pair.draft).resized(hidden=hidden, num_layers=num_layers)
    vocab = vocab_size if vocab_size is not None else (pair.target_vocab if role == "target" else pair.draft_vocab)
    emit_ids = emittable_token_ids(emit, vocab, model_type)

    config = spec.make_config(spec, arch, vocab)
    # fork_rng: some __init__s draw from the global RNG even under no_init_weights (the LLaVA families'
    # image_newline = torch.randn(...)); those values are overwritten below, and the caller's RNG stays untouched.
    with torch.random.fork_rng(devices=[]), no_init_weights():
        model = AutoModelForImageTextToText.from_config(
            config, attn_implementation=attn_implementation, dtype=torch.float32
        )
    _init_tiny_weights_(model, seed=seed, emit_ids=emit_ids, logit_std=logit_std)
    # The real ids of generation_config.json, but greedy: Qwen2-VL's sampling defaults (temperature 0.1, top_k 1,
    # repetition_penalty 1.05) would make every test depend on logits processors it does not mean to test.
    model.generation_config = GenerationConfig(
        bos_token_id=spec.bos_token_id,
        eos_token_id=list(spec.generation_eos_token_ids),
        pad_token_id=spec.pad_token_id,
        do_sample=False,
    )
    return model.eval()


def build_tiny_pair(
    model_type: str = "qwen2_5_vl",
    *,
    shape: PairShape = "contrast",
    seed: int = 0,
    target_vocab: int | None = None,
    draft_vocab: int | None = None,
    attn_implementation: str = "sdpa",
    emit: Emit = "words",
    logit_std: float = 100.0,
    target_layers: int | None = None,
    draft_layers: int | None = None,
    target_hidden: int | None = None,
    draft_hidden: int | None = None,
    vision_geometry: Mapping[str, Any] | None = None,
) -> tuple[torch.nn.Module, torch.nn.Module]:
    """``(target, draft)``: a compatible pair of different sizes, each with its own vision tower (own weights).

    Compatible = same token ids, same patch / merge / temporal sizes and window settings, same position scheme. The
    draft's language model is narrower and shallower. ``shape`` (see :data:`PairShape`) picks the rest:
    "contrast" (default) also narrows the draft's vision tower and uses the family's padded-vocab split, e.g. 152064
    (target, as Qwen2.5-VL-7B) and 151936 (draft, as -3B); "real" is shaped like the real checkpoint pairs (the same
    tower shape, only the merger's output width differs; Qwen3-VL: different towers, equal vocabs). The draft is
    seeded with ``seed + 1`` so the two are unrelated random models. ``vision_geometry`` overrides apply to both.
    """
    pair = tiny_family(model_type).pair(shape)
    shared = dict(
        shape=shape, attn_implementation=attn_implementation, emit=emit, logit_std=logit_std,
        vision_geometry=vision_geometry,
    )  # fmt: skip
    target = build_tiny_model(model_type, "target", vocab_size=target_vocab or pair.target_vocab, seed=seed,
                              num_layers=target_layers, hidden=target_hidden, **shared)  # fmt: skip
    draft = build_tiny_model(model_type, "draft", vocab_size=draft_vocab or pair.draft_vocab, seed=seed + 1,
                             num_layers=draft_layers, hidden=draft_hidden, **shared)  # fmt: skip
    return target, draft

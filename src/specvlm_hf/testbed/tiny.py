"""Tiny random-weight VLM pairs and real processors for tests and demos, built with no network access.

DESIGN §4: no model hub is reachable, so tests build tiny models from configs with random weights, using the real
checkpoints' special-token ids, vocab sizes (padded ones included), vision geometry and chat templates, and real
``transformers`` processors around a tokenizer made locally with the ``tokenizers`` library.

Public API::

    target, draft = build_tiny_pair("qwen2_5_vl")            # 152064-vocab target, 151936-vocab draft
    processor = build_processor("qwen2_5_vl")               # real Qwen2_5_VLProcessor
    inputs = make_inputs(processor, video=make_video())     # BatchFeature ready for target.generate(**inputs)
    out = target.generate(**inputs, max_new_tokens=20, do_sample=False)
    write_video_file("clip.mkv", make_video(8, 112, 112)); make_inputs(processor, video="clip.mkv")

Per-family facts live in one table, :data:`FAMILIES`, keyed by ``config.model_type``: "qwen2_5_vl", "qwen2_vl",
"qwen3_vl", "llava_onevision" and "llava_next_video". Adding a family means adding one :class:`FamilySpec` entry
(config factory, processor factory, added-token table, vocab sizes, template, geometry, tokenizer kind). The Qwen
families and LLaVA-OneVision share a byte-level BPE shaped like Qwen2's; LLaVA-NeXT-Video gets a Llama-style one
(SentencePiece-like BPE with byte fallback, "▁" word prefix, BOS) built the same way, as a real ``LlamaTokenizer``.

Speed: a pair builds in ~0.1-0.4 s and a 20-token generate takes ~0.1-0.2 s with ``torch.set_num_threads(1)``.
With 2 intra-op threads on a busy 2-core machine the same generate takes ~2 s (thread contention on tiny ops).

Why the weights look the way they do (see :func:`build_tiny_model`):

- every weight is drawn from a generator seeded by ``(seed, parameter name)``, so a model is a pure function of its
  arguments and of the transformers version; the global torch RNG is neither read nor advanced;
- linear weights have std ``1/sqrt(fan_in)`` (not the checkpoint-style 0.02) so activations stay O(1) and the
  attention logits have O(1) spread: with std 0.02 and hidden 64 every attention row is uniform, which makes
  verifier-guided scores degenerate;
- the ``lm_head`` rows of the "emittable" ids (default: whole-word tokens of the local tokenizer, all below the
  draft's vocab size) are drawn so the logits have a large spread (``logit_std``, default 100), and every other row
  is exactly zero. Zero rows give logit 0 while the max over the emittable rows is ~+250, so special ids,
  placeholders, EOS and the padded ids (>= the draft vocab) are never produced, greedy or sampled, and decoded output
  is words.
  The spread makes top-2 margins large in absolute terms (typically tens of logits, so near-tie checks with an
  absolute tolerance mean something, and sampling is nearly greedy). It does not change the *relative* gap: what keeps
  greedy output stable across kernels (sdpa vs eager, 1-token vs multi-token forwards) is float32's ~1e-6 relative
  error against a typical relative top-2 gap of a few percent; a flip needs a gap ~1e4 times smaller than typical.
  Pass ``logit_std`` ~1-3 for sampling tests that need real randomness.
"""

from __future__ import annotations

import functools
import math
import os
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from .chat_templates import (
    LLAVA_NEXT_VIDEO_CHAT_TEMPLATE,
    LLAVA_ONEVISION_CHAT_TEMPLATE,
    QWEN2_5_VL_CHAT_TEMPLATE,
    QWEN2_VL_CHAT_TEMPLATE,
    QWEN3_VL_CHAT_TEMPLATE,
)

__all__ = [
    "FAMILIES",
    "LLAVA_NEXT_VIDEO_ADDED_TOKENS",
    "LLAVA_ONEVISION_ADDED_TOKENS",
    "QWEN2_ADDED_TOKENS",
    "QWEN3_ADDED_TOKENS",
    "Emit",
    "FamilySpec",
    "TinyArch",
    "build_processor",
    "build_tiny_model",
    "build_tiny_pair",
    "build_tokenizer",
    "emittable_token_ids",
    "make_inputs",
    "make_video",
    "read_video_file",
    "video_placeholder_count",
    "write_video_file",
]

Role = Literal["target", "draft"]
#: Which ids the lm_head may emit: "words" = the local tokenizer's whole-word tokens (decoded output reads as
#: words), "text" = every ordinary id of the local tokenizer, "shared" = every ordinary (non-special) id of the
#: real vocabulary, "all" = no restriction (the target can emit special ids and padded-vocab ids ≥ the draft vocab).
Emit = Literal["words", "text", "shared", "all"]

# ----------------------------------------------------------------------------------------------------------------
# Local tokenizer: byte-level BPE shaped like Qwen2's, with a small hand-made vocabulary at low ids and the real
# special tokens at their real ids.
# ----------------------------------------------------------------------------------------------------------------

# Qwen2's pre-tokenisation regex (transformers.models.qwen2.tokenization_qwen2.PRETOKENIZE_REGEX; the same pattern is
# in the checkpoints' tokenizer.json). Using it means prompts split into the same pieces as with the real tokenizer.
_QWEN2_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
    r"""\s*[\r\n]+|\s+(?!\S)|\s+"""
)

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
    (151643, "<|endoftext|>", True),
    (151644, "<|im_start|>", True),
    (151645, "<|im_end|>", True),
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

# Words the model may emit (as " word" tokens) and that prompts are made of. Lower-case, ASCII, no duplicates.
_WORDS: tuple[str, ...] = tuple(
    (
        "a an the this that these there here it its is are was be has have and or but not no yes of in on at to from "
        "with by for into over under then while after before when where what which who how why all some one two "
        "three four five six seven eight first last next each both again video image frame frames picture scene clip "
        "square box shape object circle background color colour red green blue yellow white black orange purple pink "
        "gray dark light bright small large big little moves moving move slides goes stays appears shows see seen "
        "can left right up down top bottom center middle corner edge side across toward away slowly quickly fast "
        "still describe answer question helpful assistant user system you i we they he she time motion direction "
        "position path line very more less same other"
    ).split()
)
# Words that also appear without a leading space (at the start of a line or right after a special token) in the
# rendered chat template or in the default questions; they get a second, space-less token.
_LINE_START_WORDS: tuple[str, ...] = tuple(
    ("system user assistant You Describe What Where How Which Is The A Picture Video Answer").split()
)
# Punctuation the model may emit alongside the words (single-byte tokens).
_EMIT_PUNCT: tuple[str, ...] = (".", ",")
# Llama-style (Metaspace) vocabulary: pieces kept at their real Llama-2 ids (the ones the checkpoint's processor test
# shows: "▁" 29871, ":" 29901, "?" 29973), and the two chat-role words of the Vicuna template, one token each
# ("▁USER", "▁ASSISTANT") but never emitted.
_LLAMA_SPACE = "\u2581"
_LLAMA_REAL_PIECES: dict[str, int] = {_LLAMA_SPACE: 29871, ":": 29901, "?": 29973}
_LLAMA_TEMPLATE_WORDS: tuple[str, ...] = ("USER", "ASSISTANT")


@functools.lru_cache(maxsize=1)
def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable-character map; Qwen2's byte-level BPE uses the same one."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


def _byte_level(text: str) -> str:
    table = _bytes_to_unicode()
    return "".join(table[b] for b in text.encode("utf-8"))


@dataclass(frozen=True)
class _TextVocab:
    vocab: dict[str, int]  # ordinary tokens only (specials are added separately)
    merges: list[tuple[str, str]]
    word_ids: tuple[int, ...]  # ids of the " word" tokens plus emittable punctuation, sorted

    #: ids of the ordinary (non-special) tokens, sorted
    @property
    def text_ids(self) -> tuple[int, ...]:
        return tuple(sorted(self.vocab.values()))


def _chain_merges(
    tokens: Sequence[str], vocab: dict[str, int], finals: set[str]
) -> tuple[list[tuple[str, str]], list[str]]:
    """Left-to-right merges building every token ("a"+"b", "ab"+"c", ...), in order; and the new intermediates."""
    merges: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    intermediates: list[str] = []
    for token in tokens:
        for k in range(2, len(token) + 1):
            pair = (token[: k - 1], token[k - 1])
            if pair not in seen:
                seen.add(pair)
                merges.append(pair)
                piece = token[:k]
                if piece not in finals and piece not in vocab and piece not in intermediates:
                    intermediates.append(piece)
    return merges, intermediates


@functools.lru_cache(maxsize=1)
def _text_vocab() -> _TextVocab:
    """The ordinary part of the local tokenizer's vocabulary.

    ids 0..255 are the 256 byte symbols in GPT-2 order, which is also Qwen2's order, so single-byte tokens have their
    real ids ("\\n" = 198, " " = 220, "." = 13). Above them: the intermediate pieces the merges create, then the
    whole-word tokens in one contiguous block. Each word is built by left-to-right merges ("Ġ"+"v", "Ġv"+"i", ...).
    All " word" merges rank before the space-less ones: a " word" merge always has a "Ġ..." left side, so while it is
    being built no other merge of lower rank can apply inside it, and every " word" encodes as exactly one token.
    """
    byte_chars = list(_bytes_to_unicode().values())  # insertion order == GPT-2 id order
    vocab: dict[str, int] = {c: i for i, c in enumerate(byte_chars)}

    spaced = [_byte_level(" " + w) for w in _WORDS]
    plain = [_byte_level(w) for w in _LINE_START_WORDS]
    merges: list[tuple[str, str]] = []
    seen_merges: set[tuple[str, str]] = set()
    pieces: list[str] = []  # every merge result, in creation order
    for token in spaced + plain:
        for k in range(2, len(token) + 1):
            pair = (token[: k - 1], token[k - 1])
            if pair not in seen_merges:
                seen_merges.add(pair)
                merges.append(pair)
                pieces.append(token[:k])
    finals = set(spaced) | set(plain)
    next_id = len(vocab)
    for piece in pieces:  # intermediates first ...
        if piece not in finals and piece not in vocab:
            vocab[piece] = next_id
            next_id += 1
    for piece in spaced + plain:  # ... then the whole words, contiguous
        if piece not in vocab:
            vocab[piece] = next_id
            next_id += 1
    word_ids = sorted({vocab[t] for t in spaced} | {vocab[_byte_level(p)] for p in _EMIT_PUNCT})
    return _TextVocab(vocab=vocab, merges=merges, word_ids=tuple(word_ids))


@functools.lru_cache(maxsize=1)
def _llama_text_vocab() -> _TextVocab:
    """The ordinary part of the Llama-style (SentencePiece BPE, Metaspace "▁") local vocabulary.

    ids 3..258 are the 256 byte-fallback pieces ``<0x00>``..``<0xFF>`` at their real Llama ids (so "\\n" is 13, as in
    the real tokenizer, which has no newline piece), "▁" / ":" / "?" sit at their real ids, and above 258: the single
    characters the words need, the intermediate merge pieces, then the whole-word tokens in one contiguous block.
    Merge order follows the byte-level vocabulary's rule: every "▁word" chain ranks before every space-less chain,
    so each "▁word" encodes as exactly one token.
    """
    vocab: dict[str, int] = {f"<0x{b:02X}>": 3 + b for b in range(256)}
    vocab.update(_LLAMA_REAL_PIECES)
    spaced = [_LLAMA_SPACE + w for w in _WORDS]
    template = [_LLAMA_SPACE + w for w in _LLAMA_TEMPLATE_WORDS]
    plain = list(_LINE_START_WORDS)
    ordered = spaced + template + plain
    next_id = 3 + 256
    for ch in sorted({c for token in ordered for c in token} | set(_EMIT_PUNCT)):
        if ch not in vocab:
            vocab[ch] = next_id
            next_id += 1
    merges, intermediates = _chain_merges(ordered, vocab, set(ordered))
    for piece in [*intermediates, *ordered]:  # intermediates first, then the whole words, contiguous
        if piece not in vocab:
            vocab[piece] = next_id
            next_id += 1
    word_ids = sorted({vocab[t] for t in spaced} | {vocab[p] for p in _EMIT_PUNCT})
    return _TextVocab(vocab=vocab, merges=merges, word_ids=tuple(word_ids))


def _family_text_vocab(spec: FamilySpec) -> _TextVocab:
    return _llama_text_vocab() if spec.tokenizer_kind == "llama" else _text_vocab()


def build_tokenizer(model_type: str = "qwen2_5_vl") -> Any:
    """A fast tokenizer over a locally built BPE with the family's real special-token ids.

    Qwen families and LLaVA-OneVision: a ``PreTrainedTokenizerFast`` whose pipeline mirrors the real Qwen2
    ``tokenizer.json`` (NFC normaliser, the Qwen2 split regex, byte-level pre-tokeniser and decoder), so any text
    round-trips exactly and prompts split the way the real tokenizer splits them. LLaVA-NeXT-Video: a real
    ``LlamaTokenizer`` (Metaspace "▁", byte fallback, BOS prepended, ``legacy=False`` like the checkpoint's), see
    :func:`_llama_tokenizer`. The vocabulary is sparse: a few hundred ordinary tokens at low ids, then nothing until
    the special tokens at their real ids (e.g. ``<|video_pad|>`` = 151656, ``<video>`` = 32000); ``len(tokenizer)``
    therefore counts tokens, it is not max id + 1. Every call returns a new object, so callers may mutate it.
    """
    from transformers import PreTrainedTokenizerFast

    spec = _family(model_type)
    if spec.tokenizer_kind == "llama":
        return _llama_tokenizer(spec)
    return PreTrainedTokenizerFast(
        tokenizer_object=_backend_tokenizer(spec.model_type),  # deep-copied by the wrapper
        bos_token=None,
        eos_token=spec.eos_token,
        pad_token=spec.pad_token,
        unk_token=None,
        additional_special_tokens=list(spec.extra_special_tokens),
        model_max_length=spec.model_max_length,
        padding_side="left",  # batched generation pads on the left
        clean_up_tokenization_spaces=False,
        split_special_tokens=False,
    )


@functools.cache
def _backend_tokenizer(model_type: str) -> Any:
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import BPE

    spec = FAMILIES[model_type]
    text = _text_vocab()
    vocab = dict(text.vocab)
    for token_id, content, _special in spec.added_tokens:
        vocab[content] = token_id  # BPE vocab maps may be sparse: the real ids are kept
    tok = Tokenizer(
        BPE(
            vocab=vocab,
            merges=list(text.merges),
            dropout=None,
            unk_token=None,
            continuing_subword_prefix="",
            end_of_word_suffix="",
            fuse_unk=False,
            byte_fallback=False,
        )
    )
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    # Added tokens are matched before pre-tokenisation; since their strings are already in the vocab, they keep
    # the real ids instead of being appended after the last id.
    tok.add_tokens(
        [
            AddedToken(content, special=special, normalized=False, lstrip=False, rstrip=False, single_word=False)
            for _tid, content, special in spec.added_tokens
        ]
    )
    for token_id, content, _special in spec.added_tokens:
        got = tok.token_to_id(content)
        if got != token_id:  # pragma: no cover - guards against a tokenizers behaviour change
            raise RuntimeError(f"local tokenizer put {content!r} at id {got}, expected the real id {token_id}")
    return tok


def _llama_tokenizer(spec: FamilySpec) -> Any:
    """A real ``LlamaTokenizer`` (transformers' tokenizers backend: BPE with byte fallback, Metaspace "▁" prepended to
    the first segment only, i.e. ``legacy=False``; BOS added, no EOS) over the local vocabulary, with the family's
    special tokens at their real ids. New object on every call."""
    from tokenizers import AddedToken
    from transformers import LlamaTokenizer

    text = _llama_text_vocab()
    vocab = dict(text.vocab)
    for token_id, content, _special in spec.added_tokens:
        vocab[content] = token_id  # sparse: the real ids are kept
    tok = LlamaTokenizer(
        vocab=vocab,
        merges=list(text.merges),
        unk_token=spec.unk_token,
        bos_token=spec.bos_token,
        eos_token=spec.eos_token,
        pad_token=spec.pad_token,
        add_bos_token=True,
        add_eos_token=False,
        legacy=False,
        model_max_length=spec.model_max_length,
        padding_side="left",  # convert_llava_next_video_weights_to_hf.py: padding_side="left"
        clean_up_tokenization_spaces=False,
    )
    # As the conversion script does: tokenizer.add_tokens(AddedToken("<video>", special=True, normalized=False),
    # special_tokens=True); the strings are already in the vocab, so they keep their real ids.
    tok.add_tokens(
        [AddedToken(content, special=True, normalized=False) for content in spec.extra_special_tokens],
        special_tokens=True,
    )
    for token_id, content, _special in spec.added_tokens:
        got = tok.convert_tokens_to_ids(content)
        if got != token_id:  # pragma: no cover - guards against a tokenizers / transformers behaviour change
            raise RuntimeError(f"local tokenizer put {content!r} at id {got}, expected the real id {token_id}")
    return tok


def emittable_token_ids(emit: Emit, vocab_size: int, model_type: str = "qwen2_5_vl") -> torch.Tensor:
    """Sorted ids whose ``lm_head`` rows are non-zero under the ``emit`` policy (see :data:`Emit`)."""
    spec = _family(model_type)
    text = _family_text_vocab(spec)
    if emit == "words":
        ids = torch.tensor(text.word_ids, dtype=torch.long)
    elif emit == "text":
        ids = torch.tensor(text.text_ids, dtype=torch.long)
    elif emit == "shared":
        ids = torch.arange(spec.first_ordinary_id, min(spec.first_special_id, vocab_size), dtype=torch.long)
    elif emit == "all":
        ids = torch.arange(vocab_size, dtype=torch.long)
    else:
        raise ValueError(f"emit must be one of 'words', 'text', 'shared', 'all'; got {emit!r}")
    if int(ids.max()) >= vocab_size:
        raise ValueError(f"emit={emit!r} needs vocab_size > {int(ids.max())}, got {vocab_size}")
    return ids


# ----------------------------------------------------------------------------------------------------------------
# Family table
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TinyArch:
    """Size knobs of one tiny model. Geometry knobs that must match the real checkpoint live in :class:`FamilySpec`."""

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


@dataclass(frozen=True)
class FamilySpec:
    """Everything family-specific: real ids, vocab sizes, geometry, template, and the factories that use them."""

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
    #: the padded-vocab pair: the large checkpoint's vocab (target) and the small one's (draft).
    target_vocab: int
    draft_vocab: int
    chat_template: str
    #: geometry kept at the real checkpoint's values (patch_size, spatial_merge_size, temporal_patch_size, ...),
    #: passed to the vision config as is.
    vision_geometry: dict[str, Any]
    target_arch: TinyArch
    draft_arch: TinyArch
    make_config: Callable[[FamilySpec, TinyArch, int], Any]
    make_processor: Callable[[FamilySpec, Any, int, int], Any]
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


def _qwen_mrope_section(head_dim: int) -> list[int]:
    """M-RoPE split of the rotary half-dim in the real 2:3:3 ratio ([16, 24, 24] at head_dim 128)."""
    half = head_dim // 2
    if half % 8:
        raise ValueError(f"head_dim must be a multiple of 16 for a 2:3:3 M-RoPE split, got {head_dim}")
    unit = half // 8
    return [2 * unit, 3 * unit, 3 * unit]


def _qwen_text_config(spec: FamilySpec, arch: TinyArch, vocab_size: int) -> dict[str, Any]:
    """Text-model kwargs shared by Qwen2-VL and Qwen2.5-VL (real values where a size is not involved)."""
    head_dim = arch.text_hidden // arch.text_heads
    return dict(
        vocab_size=vocab_size,
        hidden_size=arch.text_hidden,
        intermediate_size=arch.text_intermediate,
        num_hidden_layers=arch.text_layers,
        num_attention_heads=arch.text_heads,
        num_key_value_heads=arch.text_kv_heads,
        hidden_act="silu",
        max_position_embeddings=spec.max_position_embeddings,
        rms_norm_eps=1e-6,
        use_sliding_window=False,
        sliding_window=32768,
        max_window_layers=arch.text_layers,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 1000000.0,
            "mrope_section": _qwen_mrope_section(head_dim),
        },
        bos_token_id=spec.bos_token_id,
        eos_token_id=spec.eos_token_id,
        pad_token_id=spec.pad_token_id,
    )


def _qwen2_5_vl_config(spec: FamilySpec, arch: TinyArch, vocab_size: int) -> Any:
    from transformers import Qwen2_5_VLConfig

    return Qwen2_5_VLConfig(
        text_config=_qwen_text_config(spec, arch, vocab_size),
        vision_config=dict(
            depth=arch.vision_depth,
            hidden_size=arch.vision_hidden,
            hidden_act="silu",
            intermediate_size=arch.vision_intermediate,
            num_heads=arch.vision_heads,
            in_channels=3,
            out_hidden_size=arch.text_hidden,
            fullatt_block_indexes=list(arch.vision_fullatt_blocks),
            **spec.vision_geometry,
        ),
        # Untied even for the draft (the real 3B ties its embeddings): the lm_head rows are shaped for large logit
        # margins and zeroed outside the emittable ids, which would wreck the input embeddings if tied.
        tie_word_embeddings=False,
        **spec.config_token_ids,
    )


def _qwen2_vl_config(spec: FamilySpec, arch: TinyArch, vocab_size: int) -> Any:
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
        tie_word_embeddings=False,  # the real 2B ties; see _qwen2_5_vl_config
        **spec.config_token_ids,
    )


def _qwen_image_video_processors(spec: FamilySpec, min_pixels: int, max_pixels: int) -> tuple[Any, Any]:
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


def _qwen2_5_vl_processor(spec: FamilySpec, tokenizer: Any, min_pixels: int, max_pixels: int) -> Any:
    from transformers import Qwen2_5_VLProcessor

    image_processor, video_processor = _qwen_image_video_processors(spec, min_pixels, max_pixels)
    return Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=spec.chat_template,
    )


def _qwen2_vl_processor(spec: FamilySpec, tokenizer: Any, min_pixels: int, max_pixels: int) -> Any:
    from transformers import Qwen2VLProcessor

    image_processor, video_processor = _qwen_image_video_processors(spec, min_pixels, max_pixels)
    return Qwen2VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=spec.chat_template,
    )


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

# Tiny sizes: head_dim 16 everywhere; the target is wider and deeper than the draft and the two vision towers
# differ in width, like 7B vs 3B. Depth-2 vision towers keep Qwen2.5-VL's "window blocks, then a full block".
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


def _qwen2_5_vl_spec() -> FamilySpec:
    return FamilySpec(
        model_type="qwen2_5_vl",
        **_QWEN_VL_TOKENS,
        model_max_length=131072,  # tokenizer_config.json
        max_position_embeddings=128000,  # config.json
        target_vocab=152064,  # Qwen2.5-VL-7B-Instruct (and 32B/72B) config.json "vocab_size"
        draft_vocab=151936,  # Qwen2.5-VL-3B-Instruct config.json "vocab_size"
        chat_template=QWEN2_5_VL_CHAT_TEMPLATE,
        vision_geometry={  # Qwen2.5-VL-7B/3B config.json vision_config values
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
            "tokens_per_second": 2,
        },
        target_arch=_QWEN_TARGET_ARCH,
        draft_arch=_QWEN_DRAFT_ARCH,
        make_config=_qwen2_5_vl_config,
        make_processor=_qwen2_5_vl_processor,
        provenance=(
            "config.json of Qwen/Qwen2.5-VL-7B-Instruct and -3B-Instruct: bos 151643, eos 151645, vision_start "
            "151652, vision_end 151653, image 151655, video 151656, vocab 152064 / 151936, vision patch 14, merge 2, "
            "temporal patch 2, window 112, tokens_per_second 2; tokenizer_config.json: added tokens 151643-151664; "
            "chat_template.json: see chat_templates.py"
        ),
    )


def _qwen2_vl_spec() -> FamilySpec:
    return FamilySpec(
        model_type="qwen2_vl",
        **_QWEN_VL_TOKENS,
        model_max_length=32768,  # tokenizer_config.json
        max_position_embeddings=32768,  # config.json
        target_vocab=152064,  # Qwen2-VL-7B-Instruct (and 72B) config.json "vocab_size"
        draft_vocab=151936,  # Qwen2-VL-2B-Instruct config.json "vocab_size"
        chat_template=QWEN2_VL_CHAT_TEMPLATE,
        vision_geometry={"patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2},  # no window attention
        target_arch=_QWEN_TARGET_ARCH,
        draft_arch=_QWEN_DRAFT_ARCH,
        make_config=_qwen2_vl_config,
        make_processor=_qwen2_vl_processor,
        provenance=(
            "config.json of Qwen/Qwen2-VL-7B-Instruct and -2B-Instruct: same token ids as Qwen2.5-VL, vocab "
            "152064 / 151936, vision patch 14, merge 2, temporal patch 2, quick_gelu vision MLP; tokenizer_config.json "
            "of Qwen2-VL-2B: eos <|im_end|>, pad <|endoftext|>, bos null, model_max_length 32768"
        ),
    )


def _llava_onevision_pinpoints(image_size: int) -> list[list[int]]:
    # The real grid is every (i*384, j*384) for i, j in 1..6; scaled to the tiny tile size.
    return [[i * image_size, j * image_size] for i in range(1, 7) for j in range(1, 7)]


def _llava_onevision_config(spec: FamilySpec, arch: TinyArch, vocab_size: int) -> Any:
    from transformers import LlavaOnevisionConfig

    geo = spec.vision_geometry
    return LlavaOnevisionConfig(
        text_config=dict(
            model_type="qwen2",  # Qwen2-Instruct: 1-D RoPE, theta 1e6
            vocab_size=vocab_size,
            hidden_size=arch.text_hidden,
            intermediate_size=arch.text_intermediate,
            num_hidden_layers=arch.text_layers,
            num_attention_heads=arch.text_heads,
            num_key_value_heads=arch.text_kv_heads,
            hidden_act="silu",
            max_position_embeddings=spec.max_position_embeddings,
            rms_norm_eps=1e-6,
            use_sliding_window=False,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
            bos_token_id=spec.bos_token_id,
            eos_token_id=spec.eos_token_id,
        ),
        vision_config=dict(
            model_type="siglip_vision_model",
            hidden_size=arch.vision_hidden,
            intermediate_size=arch.vision_intermediate,
            num_hidden_layers=arch.vision_depth,
            num_attention_heads=arch.vision_heads,
            image_size=geo["image_size"],
            patch_size=geo["patch_size"],
            vision_use_head=False,  # as converted: no pooling head
        ),
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        vision_aspect_ratio="anyres_max_9",
        image_grid_pinpoints=_llava_onevision_pinpoints(geo["image_size"]),
        projector_hidden_act="gelu",
        tie_word_embeddings=False,  # the real 0.5B ties; see _qwen2_5_vl_config
        **spec.config_token_ids,
    )


def _llava_onevision_processor(spec: FamilySpec, tokenizer: Any, min_pixels: int, max_pixels: int) -> Any:
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


def _llava_onevision_spec() -> FamilySpec:
    return FamilySpec(
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
        # transformers' conversion script resizes Qwen2's embeddings to vocab + 2 ("<image>", "<video>"), padded to
        # a multiple of 64: Qwen2-7B-Instruct 152064 -> 152128, Qwen2-0.5B-Instruct 151936 -> 152000.
        target_vocab=152128,
        draft_vocab=152000,
        chat_template=LLAVA_ONEVISION_CHAT_TEMPLATE,
        # Real: SigLIP image_size 384, patch 14 -> 27x27 patches, pooled to 14x14 = 196 tokens per frame. Tiny:
        # image_size 98 -> 7x7 patches, pooled to 4x4 = 16 per frame. 7 is odd like 27, so the ceil in the 2x
        # bilinear pooling is exercised the same way; the single trailing image_newline token is kept.
        vision_geometry={"patch_size": 14, "image_size": 98},
        target_arch=_QWEN_TARGET_ARCH,
        draft_arch=_QWEN_DRAFT_ARCH,
        make_config=_llava_onevision_config,
        make_processor=_llava_onevision_processor,
        provenance=(
            "config.json of llava-hf/llava-onevision-qwen2-*-ov-hf: image_token_index 151646, video_token_index "
            "151647, strategy full, layer -1, anyres_max_9; convert_llava_onevision_weights_to_hf.py: chat "
            "template, <image>/<video> added to the Qwen2-Instruct tokenizer, vocab padding to 64, num_image_tokens"
        ),
    )


# ---- Qwen3-VL ---------------------------------------------------------------------------------------------------


def _qwen3_mrope_section(head_dim: int) -> list[int]:
    """Interleaved M-RoPE split of the rotary half-dim in the real 24:20:20 = 6:5:5 ratio ([24, 20, 20] at head_dim
    128; [6, 5, 5] at the tiny head_dim 32). transformers interleaves T/H/W frequencies (H at 1, 4, 7, ..., W at 2,
    5, 8, ..., T elsewhere), so the ratio, not only the sum, shapes the positions."""
    half = head_dim // 2
    if half % 16:
        raise ValueError(f"head_dim must be a multiple of 32 for a 6:5:5 M-RoPE split, got {head_dim}")
    unit = half // 16
    return [6 * unit, 5 * unit, 5 * unit]


def _qwen3_vl_config(spec: FamilySpec, arch: TinyArch, vocab_size: int) -> Any:
    from transformers import Qwen3VLConfig

    return Qwen3VLConfig(
        text_config=dict(
            vocab_size=vocab_size,
            hidden_size=arch.text_hidden,
            intermediate_size=arch.text_intermediate,
            num_hidden_layers=arch.text_layers,
            num_attention_heads=arch.text_heads,
            num_key_value_heads=arch.text_kv_heads,
            head_dim=arch.head_dim,
            hidden_act="silu",
            max_position_embeddings=spec.max_position_embeddings,
            rms_norm_eps=1e-6,
            attention_bias=False,
            rope_parameters={
                "rope_type": "default",
                "rope_theta": 5000000.0,
                "mrope_section": _qwen3_mrope_section(arch.head_dim),
                "mrope_interleaved": True,
            },
            bos_token_id=spec.bos_token_id,
            eos_token_id=spec.eos_token_id,
            pad_token_id=spec.pad_token_id,
        ),
        vision_config=dict(
            depth=arch.vision_depth,
            hidden_size=arch.vision_hidden,
            hidden_act="gelu_pytorch_tanh",
            intermediate_size=arch.vision_intermediate,
            num_heads=arch.vision_heads,
            in_channels=3,
            out_hidden_size=arch.text_hidden,
            num_position_embeddings=2304,  # real: a 48x48 learned grid, bilinearly interpolated to each frame
            deepstack_visual_indexes=list(arch.vision_deepstack_blocks),
            **spec.vision_geometry,
        ),
        tie_word_embeddings=False,  # the real 2B/4B tie; see _qwen2_5_vl_config
        **spec.config_token_ids,
    )


def _qwen3_vl_processor(spec: FamilySpec, tokenizer: Any, min_pixels: int, max_pixels: int) -> Any:
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


def _qwen3_vl_spec() -> FamilySpec:
    return FamilySpec(
        model_type="qwen3_vl",
        **{**_QWEN_VL_TOKENS, "added_tokens": QWEN3_ADDED_TOKENS},
        model_max_length=262144,  # tokenizer_config.json
        max_position_embeddings=262144,  # config.json text_config
        # Every dense Qwen3-VL checkpoint (2B/4B/8B/32B-Instruct) has vocab_size 151936, so the draft gets the real
        # 151936 and the TARGET IS PADDED to 152064 (not a real Qwen3-VL size; Qwen2.5-VL-7B's) so that the
        # padded-vocab path (draft logits padded to the target vocab) is exercised for this family too.
        target_vocab=152064,
        draft_vocab=151936,
        chat_template=QWEN3_VL_CHAT_TEMPLATE,
        vision_geometry={"patch_size": 16, "spatial_merge_size": 2, "temporal_patch_size": 2},
        target_arch=_QWEN3_TARGET_ARCH,
        draft_arch=_QWEN3_DRAFT_ARCH,
        make_config=_qwen3_vl_config,
        make_processor=_qwen3_vl_processor,
        # Videos: these bound the whole clip (see _qwen3_vl_processor): at least 4 frames of 128^2, so a 4x56x56 clip
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
            "preprocessor / video_preprocessor_config.json: see _qwen3_vl_processor; chat_template.json: see "
            "chat_templates.py"
        ),
    )


# ---- LLaVA-NeXT-Video -------------------------------------------------------------------------------------------


def _llava_next_video_pinpoints(image_size: int) -> list[list[int]]:
    # Real (config.json image_grid_pinpoints): [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]], i.e.
    # these multiples of the 336 px tile; scaled to the tiny tile.
    return [[a * image_size, b * image_size] for a, b in ((1, 2), (2, 1), (2, 2), (3, 1), (1, 3))]


def _llava_next_video_config(spec: FamilySpec, arch: TinyArch, vocab_size: int) -> Any:
    from transformers import LlavaNextVideoConfig

    geo = spec.vision_geometry
    tokens_per_side = geo["image_size"] // geo["patch_size"] // geo["spatial_pool_stride"]
    return LlavaNextVideoConfig(
        text_config=dict(
            model_type="llama",  # Vicuna-7B-v1.5
            vocab_size=vocab_size,
            hidden_size=arch.text_hidden,
            intermediate_size=arch.text_intermediate,
            num_hidden_layers=arch.text_layers,
            num_attention_heads=arch.text_heads,
            num_key_value_heads=arch.text_kv_heads,
            hidden_act="silu",
            max_position_embeddings=spec.max_position_embeddings,
            rms_norm_eps=1e-5,
            rope_parameters={"rope_type": "linear", "factor": 2.5, "rope_theta": 10000.0},
            attention_bias=False,
            mlp_bias=False,
            bos_token_id=spec.bos_token_id,
            eos_token_id=spec.eos_token_id,
            pad_token_id=spec.pad_token_id,
        ),
        vision_config=dict(
            model_type="clip_vision_model",  # CLIP ViT-L/14-336
            hidden_size=arch.vision_hidden,
            intermediate_size=arch.vision_intermediate,
            num_hidden_layers=arch.vision_depth,
            num_attention_heads=arch.vision_heads,
            image_size=geo["image_size"],
            patch_size=geo["patch_size"],
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


def _llava_next_video_processor(spec: FamilySpec, tokenizer: Any, min_pixels: int, max_pixels: int) -> Any:
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


# Vicuna-7B is plain multi-head attention (32 key/value heads = 32 heads): kv heads = heads here too.
_LLAVA_NEXT_VIDEO_TARGET_ARCH = replace(_QWEN_TARGET_ARCH, text_kv_heads=4, vision_depth=3, vision_fullatt_blocks=())
_LLAVA_NEXT_VIDEO_DRAFT_ARCH = replace(_QWEN_DRAFT_ARCH, text_kv_heads=2, vision_fullatt_blocks=())


def _llava_next_video_spec() -> FamilySpec:
    return FamilySpec(
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
        # convert_llava_next_video_weights_to_hf.py: resize_token_embeddings(32000 + 3, pad_to_multiple_of=64) ->
        # 32064 (config.json text_config.vocab_size). There is no smaller LLaVA-NeXT-Video with this tokenizer (the
        # 34B is Yi-based), so the draft takes the UNPADDED size 32003 (not a real checkpoint size): it still embeds
        # <video> 32000 / <image> 32001, and the padded-vocab path is exercised.
        target_vocab=32064,
        draft_vocab=32003,
        chat_template=LLAVA_NEXT_VIDEO_CHAT_TEMPLATE,
        # Real: CLIP 336 px, patch 14 -> 24x24 patches, average-pooled with stride 2 to 12x12 = 144 tokens per frame,
        # no newline token. Tiny: 112 px -> 8x8 (even, like 24) -> 4x4 = 16 tokens per frame.
        vision_geometry={"patch_size": 14, "image_size": 112, "spatial_pool_stride": 2},
        target_arch=_LLAVA_NEXT_VIDEO_TARGET_ARCH,
        draft_arch=_LLAVA_NEXT_VIDEO_DRAFT_ARCH,
        make_config=_llava_next_video_config,
        make_processor=_llava_next_video_processor,
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


#: model_type -> FamilySpec. Supported: "qwen2_5_vl", "qwen2_vl", "qwen3_vl", "llava_onevision", "llava_next_video".
FAMILIES: dict[str, FamilySpec] = {
    spec.model_type: spec
    for spec in (
        _qwen2_5_vl_spec(),
        _qwen2_vl_spec(),
        _qwen3_vl_spec(),
        _llava_onevision_spec(),
        _llava_next_video_spec(),
    )
}


def _family(model_type: str) -> FamilySpec:
    if model_type not in FAMILIES:
        raise ValueError(f"no tiny fixture for model_type {model_type!r}; known: {sorted(FAMILIES)}")
    return FAMILIES[model_type]


# ----------------------------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------------------------


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
    vocab_size: int | None = None,
    seed: int = 0,
    num_layers: int | None = None,
    hidden: int | None = None,
    attn_implementation: str = "sdpa",
    emit: Emit = "words",
    logit_std: float = 100.0,
) -> torch.nn.Module:
    """A tiny random ``*ForConditionalGeneration`` of ``model_type`` in float32 and eval mode.

    Args:
        model_type: a key of :data:`FAMILIES`.
        role: "target" or "draft": picks the default sizes and vocab (target = the large checkpoint's padded vocab).
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

    The returned model carries the real token ids in its config and a greedy ``generation_config`` with the real
    eos / pad ids. Construction skips transformers' own weight init (it is overwritten anyway).
    """
    from transformers import AutoModelForImageTextToText, GenerationConfig
    from transformers.initialization import no_init_weights

    spec = _family(model_type)
    if role not in ("target", "draft"):
        raise ValueError(f"role must be 'target' or 'draft', got {role!r}")
    arch = (spec.target_arch if role == "target" else spec.draft_arch).resized(hidden=hidden, num_layers=num_layers)
    vocab = vocab_size if vocab_size is not None else (spec.target_vocab if role == "target" else spec.draft_vocab)
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
) -> tuple[torch.nn.Module, torch.nn.Module]:
    """``(target, draft)``: a compatible pair with different sizes, own vision towers and the padded-vocab split.

    Compatible = same token ids, same patch / merge / temporal sizes and window settings, same position scheme;
    different text hidden size and depth, different vision towers; default vocabs: the family's padded-vocab split,
    e.g. 152064 (target, as Qwen2.5-VL-7B) and 151936 (draft, as -3B); see each :class:`FamilySpec`. The draft is
    seeded with ``seed + 1`` so the two are unrelated random models.
    """
    spec = _family(model_type)
    target = build_tiny_model(
        model_type,
        "target",
        vocab_size=target_vocab or spec.target_vocab,
        seed=seed,
        num_layers=target_layers,
        hidden=target_hidden,
        attn_implementation=attn_implementation,
        emit=emit,
        logit_std=logit_std,
    )
    draft = build_tiny_model(
        model_type,
        "draft",
        vocab_size=draft_vocab or spec.draft_vocab,
        seed=seed + 1,
        num_layers=draft_layers,
        hidden=draft_hidden,
        attn_implementation=attn_implementation,
        emit=emit,
        logit_std=logit_std,
    )
    return target, draft


# ----------------------------------------------------------------------------------------------------------------
# Processor, videos, inputs
# ----------------------------------------------------------------------------------------------------------------


def build_processor(
    model_type: str = "qwen2_5_vl", *, min_pixels: int | None = None, max_pixels: int | None = None
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
    to 4x4 = 16 tokens per frame, no newline).
    """
    spec = _family(model_type)
    return spec.make_processor(
        spec,
        build_tokenizer(model_type),
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
    return int((inputs["input_ids"] == _family(model_type).video_token_id).sum())

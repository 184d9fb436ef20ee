"""Local tokenizers for the tiny fixtures, built with the ``tokenizers`` library and no network access.

Qwen families and LLaVA-OneVision: a byte-level BPE shaped like Qwen2's (its split regex, byte-level pre-tokeniser and
decoder), with a small hand-made vocabulary at low ids and the real special tokens at their real ids. LLaVA-NeXT-Video:
a Llama-style one (SentencePiece-like BPE with byte fallback, "▁" word prefix, BOS) built the same way, as a real
``LlamaTokenizer``. :func:`emittable_token_ids` names the ids a tiny model's ``lm_head`` may produce.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from .table import TINY_FAMILIES, TinyFamily, tiny_family

#: Which ids the lm_head may emit: "words" = the local tokenizer's whole-word tokens (decoded output reads as
#: words), "text" = every ordinary id of the local tokenizer, "shared" = every ordinary (non-special) id of the
#: real vocabulary, "all" = no restriction (the target can emit special ids and padded-vocab ids ≥ the draft vocab).
Emit = Literal["words", "text", "shared", "all"]


# Qwen2's pre-tokenisation regex (transformers.models.qwen2.tokenization_qwen2.PRETOKENIZE_REGEX; the same pattern is
# in the checkpoints' tokenizer.json). Using it means prompts split into the same pieces as with the real tokenizer.
_QWEN2_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
    r"""\s*[\r\n]+|\s+(?!\S)|\s+"""
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
    merges, intermediates = _chain_merges(spaced + plain, vocab, set(spaced) | set(plain))
    next_id = len(vocab)
    for piece in [*intermediates, *spaced, *plain]:  # intermediates first, then the whole words, contiguous
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


def _family_text_vocab(spec: TinyFamily) -> _TextVocab:
    return _llama_text_vocab() if spec.tokenizer_kind == "llama" else _text_vocab()


def build_tiny_tokenizer(model_type: str = "qwen2_5_vl") -> Any:
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

    spec = tiny_family(model_type)
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

    spec = TINY_FAMILIES[model_type]
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


def _llama_tokenizer(spec: TinyFamily) -> Any:
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
    spec = tiny_family(model_type)
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

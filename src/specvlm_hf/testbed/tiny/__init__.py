"""Tiny random-weight VLM pairs and real processors for tests and demos, built with no network access.

DESIGN §4: no model hub is reachable, so tests build tiny models from configs with random weights, using the real
checkpoints' special-token ids, vocab sizes (padded ones included), vision geometry and chat templates, and real
``transformers`` processors around a tokenizer made locally with the ``tokenizers`` library.

Public API::

    target, draft = build_tiny_pair("qwen2_5_vl")            # 152064-vocab target, 151936-vocab draft
    target, draft = build_tiny_pair("qwen3_vl", shape="real")  # shaped like 8B / 2B: other towers, equal vocabs
    processor = build_processor("qwen2_5_vl")               # real Qwen2_5_VLProcessor
    inputs = make_inputs(processor, video=make_video())     # BatchFeature ready for target.generate(**inputs)
    out = target.generate(**inputs, max_new_tokens=20, do_sample=False)
    write_video_file("clip.mkv", make_video(8, 112, 112)); make_inputs(processor, video="clip.mkv")

Per-family facts live in one table, :data:`TINY_FAMILIES`, keyed by ``config.model_type``: "qwen2_5_vl",
"qwen2_vl", "qwen3_vl", "llava_onevision" and "llava_next_video" (the library's own table is a different one,
:data:`specvlm_hf.FAMILIES`). Adding a family means adding one :class:`TinyFamily` entry (config factory, processor
factory, added-token table, pair sizes and vocabs, template, geometry, tokenizer kind). The Qwen families and
LLaVA-OneVision share a byte-level BPE shaped like Qwen2's; LLaVA-NeXT-Video gets a Llama-style one (SentencePiece-like
BPE with byte fallback, "▁" word prefix, BOS) built the same way, as a real ``LlamaTokenizer``.

Modules: :mod:`.tokenizer` (local tokenizers, emittable ids), :mod:`.table` (the family table), :mod:`.configs` (the
table's config and processor factories), :mod:`.models` (weights, models, pairs), :mod:`.inputs` (processors,
videos, inputs). Import the names below from this package.

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

from .inputs import (
    VideoLike,
    build_processor,
    make_inputs,
    make_video,
    read_video_file,
    video_placeholder_count,
    write_video_file,
)
from .models import Role, build_tiny_model, build_tiny_pair
from .table import (
    LLAVA_NEXT_VIDEO_ADDED_TOKENS,
    LLAVA_ONEVISION_ADDED_TOKENS,
    QWEN2_ADDED_TOKENS,
    QWEN3_ADDED_TOKENS,
    TINY_FAMILIES,
    PairShape,
    TinyArch,
    TinyFamily,
    TinyPair,
    tiny_family,
)
from .tokenizer import Emit, build_tiny_tokenizer, emittable_token_ids

__all__ = [
    "LLAVA_NEXT_VIDEO_ADDED_TOKENS",
    "LLAVA_ONEVISION_ADDED_TOKENS",
    "QWEN2_ADDED_TOKENS",
    "QWEN3_ADDED_TOKENS",
    "TINY_FAMILIES",
    "Emit",
    "PairShape",
    "Role",
    "TinyArch",
    "TinyFamily",
    "TinyPair",
    "VideoLike",
    "build_processor",
    "build_tiny_model",
    "build_tiny_pair",
    "build_tiny_tokenizer",
    "emittable_token_ids",
    "make_inputs",
    "make_video",
    "read_video_file",
    "tiny_family",
    "video_placeholder_count",
    "write_video_file",
]

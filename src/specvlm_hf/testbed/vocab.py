"""Word-level tokenizer, Qwen-style chat template and a real Qwen2_5_VLProcessor for the testbed.

The tokenizer knows the Qwen2.5-VL special tokens by name (their ids are simply the first ids of
this small vocabulary) and every word of the synthetic grammar. The processor is the stock
`transformers.Qwen2_5_VLProcessor` with its image and video processors configured for small frames
(patch_size 8, so a merged token covers 16x16 px), so videos go through `apply_chat_template` and the
processor exactly as a user's would.
"""

from __future__ import annotations

from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers
from transformers import (
    PreTrainedTokenizerFast,
    Qwen2_5_VLProcessor,
    Qwen2VLImageProcessor,
    Qwen2VLVideoProcessor,
)

from .synthetic import caption_vocabulary

SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
UNK = "<unk>"
SYSTEM_PROMPT = "You are a helpful assistant."
# Words of the chat template itself (roles, default system prompt, common user words).
TEMPLATE_WORDS = ("system", "user", "assistant", "you", "are", "a", "helpful", "assistant", ".", "?", ",", ":")

PATCH_SIZE = 8
MERGE_SIZE = 2
TEMPORAL_PATCH_SIZE = 2

# Qwen2.5-VL's template, reduced to text / image / video parts (no tools), same token layout.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if loop.first and message['role'] != 'system' -%}"
    "{{ '<|im_start|>system\\n" + SYSTEM_PROMPT + "<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}"
    "{{ message['content'] }}"
    "{%- else -%}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' or 'image' in part -%}"
    "{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif part['type'] == 'video' or 'video' in part -%}"
    "{{ '<|vision_start|><|video_pad|><|vision_end|>' }}"
    "{%- elif 'text' in part -%}"
    "{{ part['text'] }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{ '<|im_start|>assistant\\n' }}"
    "{%- endif -%}"
)


def vocabulary() -> list[str]:
    """Full ordered vocabulary: special tokens first (fixed ids), then <unk>, then sorted words."""
    words = sorted(set(caption_vocabulary()) | set(TEMPLATE_WORDS))
    return [*SPECIAL_TOKENS, UNK, *words]


def build_testbed_tokenizer() -> PreTrainedTokenizerFast:
    """A lowercasing word-level tokenizer; whitespace is dropped, punctuation split off."""
    vocab = {w: i for i, w in enumerate(vocabulary())}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(r"[.,?:!]"), behavior="isolated")]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token=UNK,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=list(SPECIAL_TOKENS),
        chat_template=CHAT_TEMPLATE,
        model_max_length=4096,
        padding_side="left",
    )
    return tokenizer


def special_token_ids(tokenizer: PreTrainedTokenizerFast) -> dict[str, int]:
    """Ids of the special tokens the model config needs."""
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    return {
        "pad_token_id": ids["<|endoftext|>"],
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
    }


def build_processor() -> Qwen2_5_VLProcessor:
    """The stock Qwen2.5-VL processor with small-frame image/video processors and our tokenizer."""
    # min/max pixels bound the resize: 96x96 frames stay 96x96, frames up to 192x192 are kept as is.
    size = {"shortest_edge": 32 * 32, "longest_edge": 192 * 192}
    common = dict(patch_size=PATCH_SIZE, merge_size=MERGE_SIZE, temporal_patch_size=TEMPORAL_PATCH_SIZE, size=size)
    image_processor = Qwen2VLImageProcessor(**common)
    video_processor = Qwen2VLVideoProcessor(**common, do_sample_frames=False, cap_pixels_per_frame=False)
    return Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=build_testbed_tokenizer(),
        video_processor=video_processor,
        chat_template=CHAT_TEMPLATE,
    )


def chat_messages(prompt: str) -> list[dict]:
    """User turn with one video followed by the question, as a user of the pair would write it."""
    return [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": prompt}]}]

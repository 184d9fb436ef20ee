"""Chat templates of the real checkpoints, verbatim.

The tiny processors in :mod:`specvlm_hf.testbed.tiny` must render prompts exactly as the real checkpoints do:
the placeholder layout (``<|vision_start|><|video_pad|><|vision_end|>``), the default system prompt and the
generation prompt decide which positions are "query tokens" for the verifier-guided pruning, so an invented
template would test the wrong thing.

Provenance (looked up, not typed from memory):

- ``QWEN2_VL_CHAT_TEMPLATE`` is the ``chat_template`` of ``Qwen/Qwen2.5-VL-7B-Instruct`` (its
  ``chat_template.json``), as stored under the key ``"Qwen/Qwen2.5-VL-7B-Instruct"`` in huggingface/huggingface.js
  ``packages/jinja/test/e2e.test.js`` (the Jinja port's end-to-end test, which renders it against the expected
  output ``<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n<|im_start|>user\\n<|vision_start|>
  <|image_pad|><|vision_end|>Describe this image.<|im_end|>\\n<|im_start|>assistant\\n``).
- Qwen2-VL-Instruct ships the same string: openvinotoolkit/openvino.genai ``src/cpp/src/tokenizer.cpp`` keys its
  template fallback table on the exact template of "Qwen2-VL-2B-Instruct (tokenizer_config.json)", identical
  character for character. Hence the family-neutral name. (The base, non-Instruct Qwen2-VL checkpoints have a
  different, chat-less template; the tiny fixtures model the Instruct ones.)
- ``LLAVA_ONEVISION_CHAT_TEMPLATE`` is the template the llava-hf LLaVA-OneVision checkpoints were converted with:
  the ``chat_template`` string of huggingface/transformers
  ``src/transformers/models/llava_onevision/convert_llava_onevision_weights_to_hf.py`` (the script that wrote
  ``llava-hf/llava-onevision-qwen2-{0.5b,7b}-ov-hf``). No default system prompt; images, then videos, then text.
"""

from __future__ import annotations

__all__ = ["LLAVA_ONEVISION_CHAT_TEMPLATE", "QWEN2_5_VL_CHAT_TEMPLATE", "QWEN2_VL_CHAT_TEMPLATE"]

# One line, exactly as in chat_template.json (the newlines are real "\n" characters inside the string).
QWEN2_VL_CHAT_TEMPLATE: str = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

#: Qwen2.5-VL-Instruct uses the Qwen2-VL template unchanged.
QWEN2_5_VL_CHAT_TEMPLATE: str = QWEN2_VL_CHAT_TEMPLATE

# As in the conversion script (a Python string there, so "\n" is a real newline inside the Jinja string literals).
LLAVA_ONEVISION_CHAT_TEMPLATE: str = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n'}}"
    "{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}"
    "{# Render all video then #}{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}"
    "{{ '<video>\n' }}{% endfor %}"
    "{# Render all text next #}{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] }}{% endfor %}"
    "{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] }}{% endgeneration %}{% endfor %}{% endif %}"
    "{{'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

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
- ``QWEN3_VL_CHAT_TEMPLATE`` is the ``chat_template`` of the Qwen3-VL Instruct checkpoints (``chat_template.json`` of
  ``Qwen/Qwen3-VL-{2B,4B,8B,32B}-Instruct``; the 30B-A3B MoE ships the same string). The checkpoint file itself is not
  in the searchable corpus; the text was taken from three independent verbatim copies that agree character for
  character: the ``chat_template`` of a template registry's ``"qwen3-vl-instruct"`` entry, a GUI-agent repository's
  ``chat_template_qwen3vl`` constant (both JSON-escaped, i.e. exactly as in ``chat_template.json``), and a dataset
  script's copy; a mirror of the 30B-A3B ``processor_config`` shows the same opening. Differences from Qwen2.5-VL that
  matter here: **no default system prompt**, tool support, the same ``<|vision_start|><|video_pad|><|vision_end|>``
  placeholder per video. (Qwen3VLProcessor in transformers 5.23 then expands each ``<|video_pad|>`` into per-frame
  ``<t seconds><|vision_start|><|video_pad|>*n<|vision_end|>`` blocks, keeping the template's outer pair.)
- ``LLAVA_NEXT_VIDEO_CHAT_TEMPLATE`` is **reconstructed, not found verbatim**: the ``chat_template.json`` of
  ``llava-hf/LLaVA-NeXT-Video-7B-hf`` is not in the searchable corpus, and transformers'
  ``convert_llava_next_video_weights_to_hf.py`` holds an older Vicuna template without videos. The string below is
  the llava-hf Vicuna template of ``llava-hf/llava-1.5-7b-hf`` / ``llava-v1.6-vicuna`` (``chat_template.json``,
  verbatim: openvino.genai's fallback table and transformers' Llava/LlavaNext processor tests) with the
  ``{# Render all video then #}`` block of the llava-hf OneVision template inserted after the images, verbatim. Its
  output equals what transformers' own tests expect from the real LLaVA-NeXT-Video-7B-hf processor
  (``tests/models/llava_next_video/test_processor_llava_next_video.py``): ``"USER: <image>\\nWhat is shown in this
  image? ASSISTANT:"`` and, for a video, ``"USER: <video>\\nWhat is shown in this video? ASSISTANT:"`` (token ids
  ``[1, 3148, 1001, 29901, 29871, 32000, 13, ...]``). Images, then videos, then text; no default system prompt.
"""

from __future__ import annotations

__all__ = [
    "LLAVA_NEXT_VIDEO_CHAT_TEMPLATE",
    "LLAVA_ONEVISION_CHAT_TEMPLATE",
    "QWEN2_5_VL_CHAT_TEMPLATE",
    "QWEN2_VL_CHAT_TEMPLATE",
    "QWEN3_VL_CHAT_TEMPLATE",
]

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

# Qwen3-VL-*-Instruct chat_template.json, one entry per line of the Jinja source (joined with real newlines, plus the
# file's trailing newline). Raw strings: a "\n" below is the two characters backslash + n inside a Jinja string
# literal, exactly as in the JSON-decoded checkpoint file. Long lines are split by implicit concatenation only.
QWEN3_VL_CHAT_TEMPLATE: str = (
    "\n".join(
        (
            r"{%- if tools %}",
            r"    {{- '<|im_start|>system\n' }}",
            r"    {%- if messages[0].role == 'system' %}",
            r"        {%- if messages[0].content is string %}",
            r"            {{- messages[0].content }}",
            r"        {%- else %}",
            r"            {%- for content in messages[0].content %}",
            r"                {%- if 'text' in content %}",
            r"                    {{- content.text }}",
            r"                {%- endif %}",
            r"            {%- endfor %}",
            r"        {%- endif %}",
            r"        {{- '\n\n' }}",
            r"    {%- endif %}",
            r'    {{- "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided '
            r'with function signatures within <tools></tools> XML tags:\n<tools>" }}',
            r"    {%- for tool in tools %}",
            r'        {{- "\n" }}',
            r"        {{- tool | tojson }}",
            r"    {%- endfor %}",
            r'    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments '
            r"within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
            r'<args-json-object>}\n</tool_call><|im_end|>\n" }}',
            r"{%- else %}",
            r"    {%- if messages[0].role == 'system' %}",
            r"        {{- '<|im_start|>system\n' }}",
            r"        {%- if messages[0].content is string %}",
            r"            {{- messages[0].content }}",
            r"        {%- else %}",
            r"            {%- for content in messages[0].content %}",
            r"                {%- if 'text' in content %}",
            r"                    {{- content.text }}",
            r"                {%- endif %}",
            r"            {%- endfor %}",
            r"        {%- endif %}",
            r"        {{- '<|im_end|>\n' }}",
            r"    {%- endif %}",
            r"{%- endif %}",
            r"{%- set image_count = namespace(value=0) %}",
            r"{%- set video_count = namespace(value=0) %}",
            r"{%- for message in messages %}",
            r'    {%- if message.role == "user" %}',
            r"        {{- '<|im_start|>' + message.role + '\n' }}",
            r"        {%- if message.content is string %}",
            r"            {{- message.content }}",
            r"        {%- else %}",
            r"            {%- for content in message.content %}",
            r"                {%- if content.type == 'image' or 'image' in content or 'image_url' in content %}",
            r"                    {%- set image_count.value = image_count.value + 1 %}",
            r"                    {%- if add_vision_id %}Picture {{ image_count.value }}: {% endif -%}",
            r"                    <|vision_start|><|image_pad|><|vision_end|>",
            r"                {%- elif content.type == 'video' or 'video' in content %}",
            r"                    {%- set video_count.value = video_count.value + 1 %}",
            r"                    {%- if add_vision_id %}Video {{ video_count.value }}: {% endif -%}",
            r"                    <|vision_start|><|video_pad|><|vision_end|>",
            r"                {%- elif 'text' in content %}",
            r"                    {{- content.text }}",
            r"                {%- endif %}",
            r"            {%- endfor %}",
            r"        {%- endif %}",
            r"        {{- '<|im_end|>\n' }}",
            r'    {%- elif message.role == "assistant" %}',
            r"        {{- '<|im_start|>' + message.role + '\n' }}",
            r"        {%- if message.content is string %}",
            r"            {{- message.content }}",
            r"        {%- else %}",
            r"            {%- for content_item in message.content %}",
            r"                {%- if 'text' in content_item %}",
            r"                    {{- content_item.text }}",
            r"                {%- endif %}",
            r"            {%- endfor %}",
            r"        {%- endif %}",
            r"        {%- if message.tool_calls %}",
            r"            {%- for tool_call in message.tool_calls %}",
            r"                {%- if (loop.first and message.content) or (not loop.first) %}",
            r"                    {{- '\n' }}",
            r"                {%- endif %}",
            r"                {%- if tool_call.function %}",
            r"                    {%- set tool_call = tool_call.function %}",
            r"                {%- endif %}",
            r"""                {{- '<tool_call>\n{"name": "' }}""",
            r"                {{- tool_call.name }}",
            r"""                {{- '", "arguments": ' }}""",
            r"                {%- if tool_call.arguments is string %}",
            r"                    {{- tool_call.arguments }}",
            r"                {%- else %}",
            r"                    {{- tool_call.arguments | tojson }}",
            r"                {%- endif %}",
            r"                {{- '}\n</tool_call>' }}",
            r"            {%- endfor %}",
            r"        {%- endif %}",
            r"        {{- '<|im_end|>\n' }}",
            r'    {%- elif message.role == "tool" %}',
            r'        {%- if loop.first or (messages[loop.index0 - 1].role != "tool") %}',
            r"            {{- '<|im_start|>user' }}",
            r"        {%- endif %}",
            r"        {{- '\n<tool_response>\n' }}",
            r"        {%- if message.content is string %}",
            r"            {{- message.content }}",
            r"        {%- else %}",
            r"            {%- for content in message.content %}",
            r"                {%- if content.type == 'image' or 'image' in content or 'image_url' in content %}",
            r"                    {%- set image_count.value = image_count.value + 1 %}",
            r"                    {%- if add_vision_id %}Picture {{ image_count.value }}: {% endif -%}",
            r"                    <|vision_start|><|image_pad|><|vision_end|>",
            r"                {%- elif content.type == 'video' or 'video' in content %}",
            r"                    {%- set video_count.value = video_count.value + 1 %}",
            r"                    {%- if add_vision_id %}Video {{ video_count.value }}: {% endif -%}",
            r"                    <|vision_start|><|video_pad|><|vision_end|>",
            r"                {%- elif 'text' in content %}",
            r"                    {{- content.text }}",
            r"                {%- endif %}",
            r"            {%- endfor %}",
            r"        {%- endif %}",
            r"        {{- '\n</tool_response>' }}",
            r'        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}',
            r"            {{- '<|im_end|>\n' }}",
            r"        {%- endif %}",
            r"    {%- endif %}",
            r"{%- endfor %}",
            r"{%- if add_generation_prompt %}",
            r"    {{- '<|im_start|>assistant\n' }}",
            r"{%- endif %}",
        )
    )
    + "\n"
)

# RECONSTRUCTED (see the module docstring): the llava-hf Vicuna template, verbatim, with OneVision's video block,
# verbatim, after the images. A Python string as in the conversion scripts ("\n" is a real newline).
LLAVA_NEXT_VIDEO_CHAT_TEMPLATE: str = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}"
    "{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}"
    "{# Render all video then #}{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}"
    "{{ '<video>\n' }}{% endfor %}"
    "{# Render all text next #}{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}"
    "{% endfor %}{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

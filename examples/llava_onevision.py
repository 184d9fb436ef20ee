"""LLaVA-OneVision: the 7B model verifies, the 0.5B model drafts on the video tokens the 7B attends to.

    python examples/llava_onevision.py --video my_clip.mp4
    python examples/llava_onevision.py --video frames/ --num-frames 16 --check-lossless

The 7B and 0.5B checkpoints differ in vocabulary size by padding only, which specvlm-hf supports. 32 frames are
sampled, evenly spaced (196 tokens each, plus one newline token per video). Needs the `video` extra (PyAV) and, for
these checkpoints, a GPU with room for both models.
"""

from example_cli import Family, main
from transformers import LlavaOnevisionForConditionalGeneration

FAMILY = Family(LlavaOnevisionForConditionalGeneration, target="llava-hf/llava-onevision-qwen2-7b-ov-hf",
                draft="llava-hf/llava-onevision-qwen2-0.5b-ov-hf", num_frames=32)

if __name__ == "__main__":
    raise SystemExit(main(FAMILY, __doc__))

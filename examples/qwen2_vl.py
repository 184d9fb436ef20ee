"""Qwen2-VL: the 7B model verifies, the 2B model drafts on the video tokens the 7B attends to.

    python examples/qwen2_vl.py --video my_clip.mp4
    python examples/qwen2_vl.py --video frames/ --keep-ratio 0.2 --check-lossless

The 7B (vocabulary 152064) and 2B (151936) checkpoints differ by vocabulary padding only, which specvlm-hf supports.
Frames are sampled at 2 per second. Needs the `video` extra (PyAV) and, for these checkpoints, a GPU with room for
both models.
"""

from example_cli import Family, main
from transformers import Qwen2VLForConditionalGeneration

FAMILY = Family(Qwen2VLForConditionalGeneration, target="Qwen/Qwen2-VL-7B-Instruct",
                draft="Qwen/Qwen2-VL-2B-Instruct", fps=2.0)

if __name__ == "__main__":
    raise SystemExit(main(FAMILY, __doc__))

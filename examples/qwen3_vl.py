"""Qwen3-VL: the 8B model verifies, the 2B model drafts on the video tokens the 8B attends to.

    python examples/qwen3_vl.py --video my_clip.mp4
    python examples/qwen3_vl.py --video frames/ --keep-ratio 0.2 --check-lossless

Qwen3-VL splits a video's placeholders per frame pair, with a timestamp between them; the timestamps come from the
clip's frame rate and the sampled frame indices, which this script passes to the processor. Frames are sampled at
2 per second. Needs the `video` extra (PyAV) and, for these checkpoints, a GPU with room for both models.
"""

from example_cli import Family, main
from transformers import Qwen3VLForConditionalGeneration

FAMILY = Family(Qwen3VLForConditionalGeneration, target="Qwen/Qwen3-VL-8B-Instruct",
                draft="Qwen/Qwen3-VL-2B-Instruct", fps=2.0)

if __name__ == "__main__":
    raise SystemExit(main(FAMILY, __doc__))

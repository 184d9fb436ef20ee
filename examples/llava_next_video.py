"""LLaVA-NeXT-Video: self-speculation, the 7B model drafting for itself on a pruned video.

    python examples/llava_next_video.py --video my_clip.mp4
    python examples/llava_next_video.py --video frames/ --keep-ratio 0.05 --check-lossless

There is no smaller LLaVA-NeXT-Video with the 7B's tokenizer (the 34B is Yi-based), so the default draft is
`self`: the target drafts with its own weights on the pruned prompt, with its own cache. Each drafted token then
costs a full 7B step on a shorter context, so this pays only when attention over the video dominates the step cost
(many video tokens, a small --keep-ratio). 8 frames are sampled, evenly spaced (144 tokens each). Needs the
`video` extra (PyAV) and a GPU with room for the 7B.
"""

from example_cli import Family, main
from transformers import LlavaNextVideoForConditionalGeneration

FAMILY = Family(LlavaNextVideoForConditionalGeneration, target="llava-hf/LLaVA-NeXT-Video-7B-hf", draft="self",
                num_frames=8)

if __name__ == "__main__":
    raise SystemExit(main(FAMILY, __doc__))

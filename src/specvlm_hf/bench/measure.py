"""Side measurements: how concentrated the verifier's video attention is, and the target/draft decode-step cost."""

from __future__ import annotations

import statistics
import time

import torch

from specvlm_hf.capture import video_attention_scores

TOP_FRACTION = 0.1


@torch.inference_mode()
def attention_concentration(
    target: torch.nn.Module, inputs: dict[str, torch.Tensor], object_mask: torch.Tensor | None = None
) -> dict[str, float]:
    """The verifier's renormalised query-to-video attention (the scores pruning uses) on one prompt.

    Returns the share of the mass on the top 10% of video tokens, and for testbed videos the share on the tokens
    that show an object beside those tokens' share of all video tokens.
    """
    config = target.config
    other = {k: v for k, v in inputs.items() if k != "input_ids"}
    placeholders = [config.image_token_id] if getattr(config, "image_token_id", None) is not None else []
    scores = video_attention_scores(
        target, input_ids=inputs["input_ids"], video_token_id=config.video_token_id, placeholder_ids=placeholders,
        **other,
    ).float().cpu()
    k = max(1, int(scores.numel() * TOP_FRACTION))
    out = {"top10_share": float(scores.topk(k).values.sum())}
    if object_mask is not None and object_mask.numel() == scores.numel():
        out["object_attention_share"] = float(scores[object_mask].sum())
        out["object_token_share"] = float(object_mask.float().mean())
    return out


@torch.inference_mode()
def decode_step_ms(
    target: torch.nn.Module, draft: torch.nn.Module, inputs: dict[str, torch.Tensor], steps: int = 40
) -> dict[str, float]:
    """Median wall time of one single-token forward with a KV cache after the full-video prefill, target and draft.

    The two models' steps are interleaved so that machine-load drift hits both alike. The ratio is what bounds
    speculative speedups: a round costs ~gamma draft steps plus one target forward.
    """
    states = {}
    for name, model in (("target", target), ("draft", draft)):
        out = model(**inputs, use_cache=True)
        states[name] = [model, out.past_key_values, out.logits[:, -1:].argmax(-1), []]
    for _ in range(steps):
        for state in states.values():
            model, cache, token, times = state
            start = time.perf_counter()
            out = model(input_ids=token, past_key_values=cache, use_cache=True)
            times.append(time.perf_counter() - start)
            state[1], state[2] = out.past_key_values, out.logits[:, -1:].argmax(-1)
    target_ms = statistics.median(states["target"][3]) * 1e3
    draft_ms = statistics.median(states["draft"][3]) * 1e3
    return {"target_ms": target_ms, "draft_ms": draft_ms, "ratio": target_ms / draft_ms}

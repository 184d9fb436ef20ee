"""Side measurements: how concentrated the verifier's video attention is, and the target/draft decode-step cost."""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch

from specvlm_hf.capture import video_attention_scores
from specvlm_hf.compat import CACHE_KEY, output_cache

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
        states[name] = [model, output_cache(out), out.logits[:, -1:].argmax(-1), []]
    for _ in range(steps):
        for state in states.values():
            model, cache, token, times = state
            start = time.perf_counter()
            out = model(input_ids=token, use_cache=True, **{CACHE_KEY: cache})
            times.append(time.perf_counter() - start)
            state[1], state[2] = output_cache(out), out.logits[:, -1:].argmax(-1)
    target_ms = statistics.median(states["target"][3]) * 1e3
    draft_ms = statistics.median(states["draft"][3]) * 1e3
    return {"target_ms": target_ms, "draft_ms": draft_ms, "ratio": target_ms / draft_ms}


# -- LVSpec diagnostics ------------------------------------------------------------------------------------------------


@torch.inference_mode()
def strict_rejections(
    target: torch.nn.Module, draft: torch.nn.Module, inputs: dict[str, torch.Tensor], keep: float, gamma: int,
    max_new_tokens: int, tokenizer: Any,
) -> dict:
    """Every rejected draft of the strict rule on one input: ``[[output index, target token, drafted token], ...]``.

    Runs the verifier-pruned SD call at `keep` through the owned loop with the loose rule at relax 0 / shift 0 (which
    is exact match: token-identical to strict) and records each block's verdict. A block that accepts fewer drafts
    than it proposed rejects the draft at ``start + accepted``, where the target's token (the bonus) is committed.
    Also returns the call's tokens and accept histogram (to check it against the strict row).
    """
    import specvlm_hf
    from specvlm_hf.verification import LooseVerification

    blocks: list[tuple[list[int], int, int]] = []
    original = LooseVerification.verify

    def recording(self, drafted, target_scores, hidden, **kwargs):
        verdict = original(self, drafted, target_scores, hidden, **kwargs)
        blocks.append((drafted.tolist(), verdict.accepted, verdict.bonus))
        return verdict

    config = specvlm_hf.PruneConfig(keep_ratio=keep, scorer="verifier", num_draft_tokens=gamma, verify="loose",
                                    relax_ratio=0.0, shift_window=0)
    prompt = inputs["input_ids"].shape[1]
    LooseVerification.verify = recording
    try:
        output = target.generate(**inputs, do_sample=False, max_new_tokens=max_new_tokens, assistant_model=draft,
                                 video_pruning=config, tokenizer=tokenizer)
    finally:
        LooseVerification.verify = original
    tokens = output[0, prompt:].tolist()
    rejections, position = [], 0
    for drafted, accepted, bonus in blocks:
        if accepted < len(drafted) and position + accepted < len(tokens):
            rejections.append([position + accepted, bonus, drafted[accepted]])
        position += accepted + 1
    stats = specvlm_hf.last_stats(target)
    return {"rejections": rejections, "tokens": tokens, "accept_histogram": list(stats.accept_histogram)}


@torch.inference_mode()
def generated_relevance(
    target: torch.nn.Module, inputs: dict[str, torch.Tensor], generated: list[int], top_n: int = 10
) -> dict[str, list[float]]:
    """`verification.visual_relevance` of every generated token, from one target forward over prompt + output.

    ``own``: the target's last-layer hidden state at the token's own position (what `LooseVerification` scores: the
    verification forward's rows of the drafted tokens); ``predicting``: the hidden state one position earlier (the
    one whose logits chose the token). Both against the prompt's video-token hidden states, top-`top_n` mean.
    """
    from specvlm_hf.verification import normalised_rows, visual_relevance

    if not generated:
        return {"own": [], "predicting": []}
    ids = inputs["input_ids"]
    prompt = ids.shape[1]
    extra = torch.tensor([generated], dtype=ids.dtype, device=ids.device)
    full = dict(inputs)
    full["input_ids"] = torch.cat([ids, extra], dim=1)
    full["attention_mask"] = torch.ones_like(full["input_ids"])
    for key in ("mm_token_type_ids", "token_type_ids"):  # per-token types: generated text is type 0
        if key in inputs:
            full[key] = torch.cat([inputs[key], torch.zeros_like(extra)], dim=1)
    hidden = target(**full, output_hidden_states=-1, use_cache=False).hidden_states[-1][0]
    video = normalised_rows(hidden[:prompt][ids[0] == target.config.video_token_id])
    n = len(generated)
    own = visual_relevance(hidden[prompt : prompt + n], video, top_n)
    predicting = visual_relevance(hidden[prompt - 1 : prompt - 1 + n], video, top_n)
    return {"own": own.tolist(), "predicting": predicting.tolist()}

"""Aggregates over samples: per-method metrics, paired bootstrap intervals, and the paper's claims (a)-(d).

Definitions (also printed in RESULTS.md):

* tau = SpecStats.mean_accepted_length = (new_tokens - 1) / rounds, tokens per verification forward, bonus included;
  averaged over samples. For stock assisted (no SpecStats) we report new_tokens / target forwards instead.
* end-to-end time = wall time of the whole ``generate`` call.
* decode-only time = end-to-end minus the prefills. "AR first token" = the wall time of ``generate(max_new_tokens=1)``
  on the same input (run interleaved with the methods): generate's set-up, the target prefill and the first token.
  AR: end-to-end minus AR first token. Speculative methods: end-to-end minus AR first token minus
  SpecStats.draft_prefill_s. The same measured set-up + target prefill is removed from every method: generate's
  set-up grows with the number of video tokens (position ids, multimodal bookkeeping), and removing it from AR only
  would bias long-video speedups. Whatever SD adds to its own target prefill (the attention capture, the wrapper's
  set-up) stays in its decode time (conservative for SD). Stock assisted: end-to-end minus AR first token (its draft
  prefill is not measurable from outside).
* speedup = AR time / method time per sample; reported as median with min and max over samples.
"""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np

from .methods import AR, FULL, STOCK, pruned_name

BOOTSTRAP_RESAMPLES = 2000
TIME_FIELDS = ("target_prefill_s", "capture_s", "draft_prefill_s", "draft_s", "verify_s", "overhead_s")


# -- per-sample values -----------------------------------------------------------------------------------------------


def decode_seconds(sample: dict[str, Any], method: str) -> float:
    """Decode-only seconds of `method` on one sample (see the module docstring)."""
    entry = sample["methods"][method]
    prefill = sample["ar_prefill_s"]
    if entry["stats"] is not None:
        prefill += entry["stats"]["draft_prefill_s"]
    return max(entry["seconds"] - prefill, 1e-9)


def tau(sample: dict[str, Any], method: str) -> float | None:
    """Tokens per target verification forward (bonus included); None for AR."""
    entry = sample["methods"][method]
    if entry["stats"] is not None:
        return entry["stats"]["mean_accepted_length"]
    if entry["target_forwards"]:
        return entry["new_tokens"] / entry["target_forwards"]
    return None


def speedups(sample: dict[str, Any], method: str) -> tuple[float, float]:
    """(end-to-end, decode-only) speedup of `method` over AR on one sample."""
    e2e = sample["methods"][AR]["seconds"] / sample["methods"][method]["seconds"]
    return e2e, decode_seconds(sample, AR) / decode_seconds(sample, method)


def per_sample(samples: list[dict[str, Any]], method: str, metric: str) -> list[float]:
    """One metric of one method over the samples that ran it: "tau", "speedup_e2e" or "speedup_decode"."""
    out = []
    for s in samples:
        if method not in s["methods"]:
            continue
        if metric == "tau":
            value = tau(s, method)
        else:
            value = speedups(s, method)[0 if metric == "speedup_e2e" else 1]
        if value is not None:
            out.append(value)
    return out


# -- statistics ------------------------------------------------------------------------------------------------------


def spread(values: list[float]) -> dict[str, float] | None:
    """Median, min, max and mean of a list (None when empty)."""
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "mean": statistics.fmean(values)}


def paired_bootstrap(a: list[float], b: list[float], kind: str = "diff", seed: int = 0) -> dict[str, float]:
    """Bootstrap 95% interval of mean(a) - mean(b) ("diff") or mean(a) / mean(b) ("ratio") over paired samples.

    Samples are resampled as pairs (the same videos for both methods), which removes the per-video variation that
    both methods share.
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(BOOTSTRAP_RESAMPLES, len(x)))
    mx, my = x[idx].mean(axis=1), y[idx].mean(axis=1)
    stats = mx - my if kind == "diff" else mx / my
    point = x.mean() - y.mean() if kind == "diff" else x.mean() / y.mean()
    low, high = np.percentile(stats, [2.5, 97.5])
    return {"estimate": float(point), "ci_low": float(low), "ci_high": float(high), "n": len(x)}


def compare(samples: list[dict[str, Any]], a: str, b: str, metric: str, kind: str = "diff") -> dict[str, Any] | None:
    """Paired bootstrap of `metric` between methods `a` and `b` on the samples where both ran."""
    both = [s for s in samples if a in s["methods"] and b in s["methods"]]
    if not both:
        return None
    x, y = per_sample(both, a, metric), per_sample(both, b, metric)
    if len(x) != len(y) or not x:
        return None
    return {"a": a, "b": b, "metric": metric, "kind": kind, **paired_bootstrap(x, y, kind)}


# -- per-method summary ----------------------------------------------------------------------------------------------


def sum_stats(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Pooled SpecStats counters, mean per-sample times, the summed accept histogram and the cost shares."""
    totals = {k: sum(e[k] for e in entries) for k in ("new_tokens", "rounds", "drafted", "accepted")}
    histogram: list[int] = []
    for e in entries:
        for i, count in enumerate(e["accept_histogram"]):
            histogram.extend([0] * (i + 1 - len(histogram)))
            histogram[i] += count
    times = {k: statistics.fmean(e[k] for e in entries) for k in TIME_FIELDS}
    return {
        "accepted_per_round": statistics.fmean(e["accepted_per_round"] for e in entries),
        "acceptance_rate": totals["accepted"] / totals["drafted"] if totals["drafted"] else 0.0,
        "accept_histogram": histogram,
        "video_tokens": statistics.fmean(e["video_tokens"] for e in entries),
        "kept_video_tokens": statistics.fmean(e["kept_video_tokens"] for e in entries),
        "mean_times_s": times,
        "overhead_share_of_draft": times["overhead_s"] / times["draft_s"] if times["draft_s"] else 0.0,
        "capture_share_of_prefill": times["capture_s"] / times["target_prefill_s"] if times["target_prefill_s"] else 0.0,
        **{f"total_{k}": v for k, v in totals.items()},
    }


def method_summary(samples: list[dict[str, Any]], method: str) -> dict[str, Any]:
    """Every metric of one method over the samples that ran it."""
    ran = [s for s in samples if method in s["methods"]]
    out: dict[str, Any] = {
        "samples": len(ran),
        "all_match_ar": all(s["methods"][method]["matches_ar"] for s in ran),
        "seconds": spread([s["methods"][method]["seconds"] for s in ran]),
        "decode_seconds": spread([decode_seconds(s, method) for s in ran]),
    }
    if method == AR or not ran:
        return out
    out["tau"] = spread(per_sample(ran, method, "tau"))
    out["speedup_e2e"] = spread(per_sample(ran, method, "speedup_e2e"))
    out["speedup_decode"] = spread(per_sample(ran, method, "speedup_decode"))
    stats = [s["methods"][method]["stats"] for s in ran if s["methods"][method]["stats"] is not None]
    if stats:
        out.update(sum_stats(stats))
    return out


def attention_summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Spread of the verifier attention measurements over the samples."""
    keys = sorted({k for s in samples for k in s.get("attention", {})})
    return {k: spread([s["attention"][k] for s in samples if k in s.get("attention", {})]) for k in keys}


def comparisons(samples: list[dict[str, Any]], keeps: list[float], scorers: list[str]) -> list[dict[str, Any]]:
    """The paired differences the report discusses: scorers against each other and against the full video."""
    guided = [s for s in scorers if s.startswith("verifier")]  # the verifier and its Stage-I-capped variants
    out = []
    for keep in keeps:
        verifier = pruned_name(keep, "verifier")
        for scorer in guided:
            if scorer != "verifier":
                out.append(compare(samples, pruned_name(keep, scorer), verifier, "tau"))
        for a in guided:
            for b in scorers:
                if b not in guided:
                    out.append(compare(samples, pruned_name(keep, a), pruned_name(keep, b), "tau"))
        for scorer in scorers:
            out.append(compare(samples, pruned_name(keep, scorer), FULL, "tau", kind="ratio"))
        out.append(compare(samples, verifier, FULL, "speedup_decode"))
        out.append(compare(samples, verifier, FULL, "speedup_decode", kind="ratio"))
        out.append(compare(samples, verifier, STOCK, "speedup_decode"))
        out.append(compare(samples, verifier, FULL, "speedup_e2e"))
    return [c for c in out if c is not None]


def summarise_set(samples: list[dict[str, Any]], methods: list[str], keeps: list[float], scorers: list[str]) -> dict:
    """Everything the report needs about one row set."""
    exact = [s["ar_equals_reference"] for s in samples if "ar_equals_reference" in s]
    return {
        "ar_caption_exact_match": sum(exact) / len(exact) if exact else None,
        "methods": {m: method_summary(samples, m) for m in methods},
        "attention": attention_summary(samples),
        "comparisons": comparisons(samples, keeps, scorers),
    }

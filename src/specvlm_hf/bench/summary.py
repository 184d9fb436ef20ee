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

import re
import statistics
from typing import Any

import numpy as np

from .methods import AR, FULL, STOCK, is_loose_name, pruned_name

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


def method_tokens(sample: dict[str, Any], method: str) -> list[int]:
    """The tokens `method` generated on one sample (recorded when they differ from AR's, or for lossy rows)."""
    if method == AR:
        return sample["ar_tokens"]
    entry = sample["methods"][method]
    return entry["tokens"] if "tokens" in entry else sample["ar_tokens"]


def method_text(sample: dict[str, Any], method: str) -> str | None:
    """The decoded caption of `method` on one sample (None if it was not decoded)."""
    entry = sample["methods"].get(method, {}) if method != AR else {}
    if "text" in entry:
        return entry["text"]
    if method == AR or entry.get("matches_ar"):
        return sample.get("ar_text")
    return None


def ar_agreement(a: list[int], b: list[int]) -> float:
    """Position-wise equal tokens / max(len(a), len(b)) (1.0 for two empty outputs)."""
    longest = max(len(a), len(b))
    return sum(x == y for x, y in zip(a, b)) / longest if longest else 1.0


def fidelity(sample: dict[str, Any], method: str, metric: str) -> float | None:
    """One fidelity value of `method` on one sample: "fact_accuracy" and "exact_match" against the ground-truth caption
    (testbed only), "ar_agreement" (token level) and "identical" (output == AR) against AR's output."""
    if metric == "ar_agreement":
        return ar_agreement(sample["ar_tokens"], method_tokens(sample, method))
    if metric == "identical":
        return float(method == AR or sample["methods"][method]["matches_ar"])
    reference, text = sample.get("reference_caption"), method_text(sample, method)
    if reference is None or text is None:
        return None
    if metric == "exact_match":
        return float(text == reference)
    from specvlm_hf.testbed.synthetic import fact_score

    correct, total = fact_score(text, reference)
    return correct / total


FIDELITY_METRICS = ("fact_accuracy", "exact_match", "ar_agreement", "identical")


def per_sample(samples: list[dict[str, Any]], method: str, metric: str) -> list[float]:
    """One metric of one method over the samples that ran it: "tau", "speedup_e2e", "speedup_decode" or one of
    `FIDELITY_METRICS`."""
    out = []
    for s in samples:
        if method != AR and method not in s["methods"]:
            continue
        if metric == "tau":
            value = tau(s, method)
        elif metric in FIDELITY_METRICS:
            value = fidelity(s, method, metric)
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
    with np.errstate(divide="ignore", invalid="ignore"):
        stats = mx - my if kind == "diff" else mx / my
    point = x.mean() - y.mean() if kind == "diff" else x.mean() / y.mean()
    # A ratio is undefined on the (rare) resamples whose denominator mean is 0 (e.g. exact-match rates): drop those.
    stats = stats[np.isfinite(stats)]
    low, high = np.percentile(stats, [2.5, 97.5]) if stats.size else (float("nan"), float("nan"))
    return {"estimate": float(point), "ci_low": float(low), "ci_high": float(high), "n": len(x)}


def compare(samples: list[dict[str, Any]], a: str, b: str, metric: str, kind: str = "diff") -> dict[str, Any] | None:
    """Paired bootstrap of `metric` between methods `a` and `b` on the samples where both ran."""
    both = [s for s in samples if (a == AR or a in s["methods"]) and (b == AR or b in s["methods"])]
    if not both:
        return None
    x, y = per_sample(both, a, metric), per_sample(both, b, metric)
    if len(x) != len(y) or not x or (kind == "ratio" and not sum(y)):
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
    if is_loose_name(method):
        out["tokens_equal_ar"] = sum(s["methods"][method]["matches_ar"] for s in ran)
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
    # Score-guided rows (the verifier, its paper-rule variants, the similarity scorer) against each other's default
    # and against the baselines.
    guided = [s for s in scorers if s.startswith("verifier") or s == "similarity"]
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
    out = {
        "ar_caption_exact_match": sum(exact) / len(exact) if exact else None,
        "methods": {m: method_summary(samples, m) for m in methods},
        "attention": attention_summary(samples),
        "comparisons": comparisons(samples, keeps, scorers),
    }
    loose = [m for m in methods if is_loose_name(m) and any(m in s["methods"] for s in samples)]
    if loose:
        out["loose"] = loose_summary(samples, loose, pruned_name(keeps[0], "verifier"))
    if any("lvspec_diagnostics" in s for s in samples):
        out["lvspec_diagnostics"] = diagnostics_summary(samples, out["methods"].get(pruned_name(keeps[0], "verifier")))
    return out


# -- loose verification (LVSpec): fidelity vs speed --------------------------------------------------------------------

LOOSE_NAME = re.compile(r"^loose-(topk-)?r([0-9.]+)-w([0-9]+)$")


def loose_settings(name: str) -> dict[str, Any] | None:
    """relax_ratio, shift_window and loose_rule of a loose row's name (``loose-r0.7-w1``, ``loose-topk-r0.7-w1``)."""
    match = LOOSE_NAME.match(name)
    if not match:
        return None
    return {"relax_ratio": float(match[2]), "shift_window": int(match[3]),
            "loose_rule": "target_topk" if match[1] else "any"}


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def fidelity_row(samples: list[dict[str, Any]], method: str) -> dict[str, Any]:
    """Mean fidelity of `method` over the samples that ran it."""
    ran = [s for s in samples if method == AR or method in s["methods"]]
    return {"samples": len(ran), **{m: _mean(per_sample(ran, method, m)) for m in FIDELITY_METRICS}}


def loose_summary(samples: list[dict[str, Any]], loose: list[str], strict: str) -> dict[str, Any]:
    """AR, the strict row at the same pruning and every loose row: fidelity (vs ground truth and vs AR) and speed
    (vs the strict row), with paired bootstrap intervals for retention and the ratios to strict.

    retention = mean metric of the row / mean metric of AR, over the same videos (fact accuracy and exact match).
    """
    rows: dict[str, Any] = {}
    for method in [AR, strict, *loose]:
        if method != AR and not any(method in s["methods"] for s in samples):
            continue
        row = fidelity_row(samples, method)
        row["settings"] = loose_settings(method)
        if method != AR:
            ran = [s for s in samples if method in s["methods"]]
            row["tau"] = _mean(per_sample(ran, method, "tau"))
            decode = per_sample(ran, method, "speedup_decode")
            row["speedup_decode"] = statistics.median(decode) if decode else None
            stats = [s["methods"][method]["stats"] or {} for s in ran]
            row["relaxed_per_video"] = _mean([st.get("relaxed_accepted", 0) for st in stats])
            row["shifted_per_video"] = _mean([st.get("shift_accepted", 0) for st in stats])
            row["tau_vs_strict"] = compare(samples, method, strict, "tau", "ratio")
            row["speedup_vs_strict"] = compare(samples, method, strict, "speedup_decode", "ratio")
            row["retention_fact"] = compare(samples, method, AR, "fact_accuracy", "ratio")
            row["retention_exact"] = compare(samples, method, AR, "exact_match", "ratio")
            row["first_divergence"] = first_divergence_classes(ran, method)
        rows[method] = row
    return {"strict": strict, "rows": rows}


# -- word classes of AR's output (for the diagnostics) ---------------------------------------------------------------

FACT, STRUCTURE, FILLER = "fact", "structure", "filler"


def _fact_vocabulary() -> tuple[set[str], set[str]]:
    from specvlm_hf.testbed.synthetic import SLOT_WORDS

    slot = {w for words in SLOT_WORDS.values() for w in words}
    return slot | {"moves", "stays"}, slot


def token_classes(sample: dict[str, Any]) -> tuple[list[str], str] | None:
    """A class per AR output token: ``fact`` (a slot word of the caption grammar: count, colour, shape, row, col, and
    the motion phrase "moves X" / "stays still"), ``structure`` (not a slot, but video-dependent: "object"/"objects",
    and the token after an object sentence's "." -- the next object's article or the end of the caption -- both
    decided by the object count) or ``filler`` (predictable from the prompt).

    Where AR's caption equals the ground truth, the slot tags of `caption_words` (``reference_slots``) give the fact
    positions ("gt"); elsewhere the vocabulary of the slots does ("vocab"; identical on exact captions). Returns the
    classes and which source was used, or None if the tokens and the words do not line up (word-level tokenizer
    expected).
    """
    text = sample.get("ar_text")
    if text is None:
        return None
    words, tokens = text.split(), sample["ar_tokens"]
    if len(tokens) not in (len(words), len(words) + 1):
        return None
    facts, _ = _fact_vocabulary()
    slots = sample.get("reference_slots")
    aligned = bool(sample.get("ar_equals_reference")) and slots is not None and len(slots) == len(words)
    classes, periods = [], 0
    for i in range(len(tokens)):
        word = words[i] if i < len(words) else None  # None: the end-of-turn token after the caption
        previous = words[i - 1] if 0 < i <= len(words) else None
        if previous == ".":
            periods += 1
        is_fact = slots[i] is not None if aligned and word is not None else word in facts
        if is_fact:
            classes.append(FACT)
        elif word in ("object", "objects") or (previous == "." and periods >= 2) or word is None:
            classes.append(STRUCTURE)
        else:
            classes.append(FILLER)
    return classes, "gt" if aligned else "vocab"


def first_divergence_classes(samples: list[dict[str, Any]], method: str) -> dict[str, Any]:
    """Of the outputs of `method` that differ from AR: the class of AR's token where they first differ."""
    counts = {FACT: 0, STRUCTURE: 0, FILLER: 0}
    for s in samples:
        ours = method_tokens(s, method)
        if ours == s["ar_tokens"]:
            continue
        classified = token_classes(s)
        index = next((i for i, (x, y) in enumerate(zip(s["ar_tokens"], ours)) if x != y),
                     min(len(ours), len(s["ar_tokens"])))
        if classified is None or index >= len(classified[0]):
            continue
        counts[classified[0][index]] += 1
    total = sum(counts.values())
    return {"diverging": total, **{f"{k}_share": (v / total if total else None) for k, v in counts.items()}}


def auc(positive: list[float], negative: list[float]) -> float | None:
    """P(score of a positive > score of a negative), ties counting one half (Mann-Whitney U / (n_pos n_neg))."""
    if not positive or not negative:
        return None
    values = np.asarray([*positive, *negative], dtype=float)
    order = values.argsort(kind="mergesort")
    ranks = np.empty(len(values))
    sorted_values = values[order]
    i = 0
    while i < len(values):  # average ranks over ties
        j = i
        while j + 1 < len(values) and sorted_values[j + 1] == sorted_values[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    n_pos, n_neg = len(positive), len(negative)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def diagnostics_summary(samples: list[dict[str, Any]], strict_row: dict[str, Any] | None) -> dict[str, Any]:
    """(a) the strict rule's rejected drafts by the class of the target's token; (b) how well the visual relevance
    separates fact from filler tokens of AR's outputs (AUC, own position and predicting position)."""
    _, slot_vocab = _fact_vocabulary()
    rejected = {FACT: 0, STRUCTURE: 0, FILLER: 0}
    slot_vocab_rejections = total_rejections = 0
    sources = {"gt": 0, "vocab": 0, "unaligned": 0}
    relevance: dict[str, dict[str, list[float]]] = {k: {FACT: [], STRUCTURE: [], FILLER: []}
                                                    for k in ("own", "predicting")}
    histogram: list[int] = []
    replay_matches = 0
    diagnosed = [s for s in samples if "lvspec_diagnostics" in s]
    for s in diagnosed:
        d = s["lvspec_diagnostics"]
        replay_matches += bool(d["matches_ar"])
        for i, count in enumerate(d["accept_histogram"]):
            histogram.extend([0] * (i + 1 - len(histogram)))
            histogram[i] += count
        classified = token_classes(s)
        if classified is None:
            sources["unaligned"] += 1
            continue
        classes, source = classified
        sources[source] += 1
        words = s["ar_text"].split()
        for position, _target_token, _drafted in d["rejections"]:
            if position < len(classes):
                total_rejections += 1
                rejected[classes[position]] += 1
                slot_vocab_rejections += position < len(words) and words[position] in slot_vocab
        for key in ("own", "predicting"):
            for cls, value in zip(classes, d[f"relevance_{key}"]):
                relevance[key][cls].append(value)
    out: dict[str, Any] = {
        "videos": len(diagnosed),
        "class_source": sources,
        "replay_matches_ar": replay_matches,
        "replay_histogram_equals_strict": bool(strict_row) and histogram == strict_row.get("accept_histogram"),
        "rejections": total_rejections,
        "rejection_shares": {k: (v / total_rejections if total_rejections else None) for k, v in rejected.items()},
        "rejection_slot_vocabulary_share": slot_vocab_rejections / total_rejections if total_rejections else None,
        "tokens": {k: len(v) for k, v in relevance["own"].items()},
    }
    for key in ("own", "predicting"):
        r = relevance[key]
        out[f"auc_{key}"] = auc(r[FACT], r[FILLER])
        out[f"auc_{key}_fact_and_structure"] = auc(r[FACT] + r[STRUCTURE], r[FILLER])
        out[f"mean_relevance_{key}"] = {k: _mean(v) for k, v in r.items()}
    return out


# -- the selection study (issue 15; bench/study.py) --------------------------------------------------------------------


def _study_pairs(samples: list[dict[str, Any]], key: str, other: str) -> tuple[list[float], list[float]]:
    """τ of `key` and of `other` on the videos that ran both (non-core rules ran on a subset)."""
    both = [s for s in samples if key in s["tau"] and other in s["tau"]]
    return [s["tau"][key] for s in both], [s["tau"][other] for s in both]


def selection_study_summary(study: dict[str, Any]) -> dict[str, Any]:
    """Per row set, rule and keep: τ / full-video τ and the τ differences to `uniform` and `random` (paired bootstrap
    over the videos); the attention sources' τ / full at the sources' keep and how each source ranks."""
    out: dict[str, Any] = {"keeps": study["keeps"], "default_rule": study["default_rule"], "rules": study["rules"],
                           "mismatches": len(study["mismatches"]), "sets": {}}
    for name, data in study["sets"].items():
        samples = data["samples"]
        if not samples:
            continue
        full = [s["tau"]["full@1"] for s in samples]
        rows: dict[str, dict[str, Any]] = {}
        for rule in (r["name"] for r in study["rules"]):
            for keep in study["keeps"]:
                key = f"{rule}@{keep:g}"
                taus, reference = _study_pairs(samples, key, "full@1")
                if not taus:
                    continue
                cell = {"videos": len(taus), "tau": statistics.fmean(taus),
                        "vs_full": paired_bootstrap(taus, reference, "ratio")}
                for baseline in ("uniform", "random"):
                    if rule != baseline:
                        cell[f"vs_{baseline}"] = paired_bootstrap(*_study_pairs(samples, key, f"{baseline}@{keep:g}"))
                rows.setdefault(rule, {})[f"{keep:g}"] = cell
        attention = {k: spread([s["attention"][k] for s in samples])
                     for k in ("top10_share", "object_precision_top5", "object_precision_top10")}
        group_mass = np.mean([s["attention"]["group_mass"] for s in samples], axis=0).tolist()
        out["sets"][name] = {"video_tokens": samples[0]["video_tokens"], "videos": len(samples),
                             "full_tau": statistics.fmean(full), "rows": rows, "attention": attention,
                             "group_mass": group_mass,
                             "object_token_share": statistics.fmean(s["object_token_share"] for s in samples)}
        with_sources = [s for s in samples if "sources" in s]
        if with_sources:
            out["sources"] = sources_summary(with_sources, study["sources"], study["default_rule"])
    return out


def sources_summary(samples: list[dict[str, Any]], sources: dict[str, Any], default_rule: str) -> dict[str, Any]:
    """τ / full at the sources' keep for every attention source (with the default rule), and its ranking stats.
    ``all`` (every layer and head: the default's own scores) and ``last-query`` come from the main table's rows."""
    keep = sources["keep"]
    full = [s["tau"]["full@1"] for s in samples]
    rows: dict[str, Any] = {}
    for name, key in (("all", default_rule), ("last-query", "last-query")):
        if all(f"{key}@{keep:g}" in s["tau"] for s in samples):
            rows[name] = {"vs_full": paired_bootstrap([s["tau"][f"{key}@{keep:g}"] for s in samples], full, "ratio")}
    for name in sources["rules"]:
        rows[name] = {"vs_full": paired_bootstrap([s["sources"][f"{name}@{keep:g}"] for s in samples], full, "ratio")}
    heads = sorted({k for s in samples for k in s["source_stats"] if "h" in k and k not in rows},
                   key=lambda k: tuple(int(x) for x in k[1:].split("h")))
    rows.update({name: {} for name in heads})  # per-head sources: how they rank, not run
    for name, row in rows.items():
        stats = [s["source_stats"][name] for s in samples]
        row.update({k: statistics.fmean(st[k] for st in stats)
                    for k in ("top10_share", "object_precision_top5", "object_precision_top10")})
        mass = np.mean([st["group_mass"] for st in stats], axis=0)
        row["first_group_mass"], row["last_group_mass"] = float(mass[0]), float(mass[-1])
    return {"keep": keep, "videos": len(samples), "rows": rows}

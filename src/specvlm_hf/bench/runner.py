"""The benchmark loop: every method on every input, interleaved per sample, each SD output checked against AR."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm import tqdm

from .inputs import BenchInput
from .measure import attention_concentration, decode_step_ms, generated_relevance, strict_rejections
from .methods import AR, AR_PREFILL, Method, Run, run_method


@dataclass
class RunSettings:
    """What every generate call of the run shares."""

    max_new_tokens: int
    gamma: int
    attention: bool = True  # measure the verifier attention concentration per sample (one extra target prefill)
    diagnostics_keep: float | None = None  # LVSpec diagnostics at this keep (strict rejections, relevance of AR)
    tokenizer: Any = None  # passed to loose calls as generate(tokenizer=...): their special tokens are never relaxed


@dataclass
class SetResult:
    """Raw results of one row set (e.g. "main" = 144 video tokens, "long" = 576)."""

    name: str
    samples: list[dict[str, Any]] = field(default_factory=list)
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # method -> error string (method skipped after it)
    cost: dict[str, float] = field(default_factory=dict)


def first_difference(a: list[int], b: list[int]) -> int | None:
    """Index of the first differing token (a length difference counts), None when equal."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def report_mismatch(set_name: str, sample: str, method: str, reference: list[int], tokens: list[int]) -> dict:
    """Print a loud warning and return the JSON record of an SD output that differs from AR."""
    index = first_difference(reference, tokens)
    banner = "!" * 100
    print(
        f"\n{banner}\nMISMATCH [{set_name}] sample {sample} method {method}: output differs from AR at generated token "
        f"{index}\n  AR: {reference}\n  SD: {tokens}\n{banner}",
        file=sys.stderr,
        flush=True,
    )
    return {"set": set_name, "sample": sample, "method": method, "first_difference": index,
            "ar_tokens": reference, "method_tokens": tokens}


def rotated(methods: list[Method], offset: int) -> list[Method]:
    """The methods in a per-sample rotated order, so that no method always runs first (cold caches) or last."""
    offset %= len(methods)
    return methods[offset:] + methods[:offset]


def run_sample(
    methods: list[Method], target, draft, item: BenchInput, settings: RunSettings, result: SetResult, index: int
) -> dict[str, Run]:
    """All enabled methods on one input. A failing stock call disables stock for the rest of the set (recorded)."""
    runs: dict[str, Run] = {}
    for method in rotated(methods, index):
        if method.name in result.errors:
            continue
        try:
            runs[method.name] = run_method(method, target, draft, item.inputs, settings.max_new_tokens, settings.gamma,
                                           settings.tokenizer)
        except Exception as error:  # only stock may fail: it rejects some pairs, and its blind draft may
            if method.kind != "stock":  # propose placeholder ids. Our methods failing is a bug: raise it.
                raise
            result.errors[method.name] = f"{type(error).__name__}: {error}"
            tqdm.write(f"stock assisted generation raised on {item.name}; skipping it: {result.errors[method.name]}")
    return runs


def sample_record(item: BenchInput, runs: dict[str, Run], result: SetResult, lossy: frozenset[str] = frozenset()
                  ) -> dict[str, Any]:
    """The JSON record of one sample; checks every speculative output against AR token for token.

    Methods in `lossy` (loose verification with relax > 0 or shift > 0) may differ from AR by design: their outputs
    are recorded (``tokens``) but never count as mismatches. Every other output that differs is a mismatch (and is
    recorded with its tokens too).
    """
    reference = runs[AR].tokens
    record: dict[str, Any] = {
        "name": item.name,
        "video_tokens": item.video_tokens,
        "reference_caption": item.reference,
        "ar_prefill_s": runs[AR_PREFILL].seconds,
        "methods": {},
    }
    if item.reference_slots is not None:
        record["reference_slots"] = list(item.reference_slots)
    for name, run in runs.items():
        if name == AR_PREFILL:
            continue
        matches = run.tokens == reference
        if not matches and name not in lossy:
            result.mismatches.append(report_mismatch(result.name, item.name, name, reference, run.tokens))
        record["methods"][name] = {
            "seconds": run.seconds,
            "new_tokens": len(run.tokens),
            "matches_ar": matches,
            "stats": run.stats,
            "target_forwards": run.target_forwards,
        }
        if not matches or name in lossy:
            record["methods"][name]["tokens"] = run.tokens
    record["ar_tokens"] = reference
    return record


def run_set(
    name: str, items: list[BenchInput], methods: list[Method], target, draft, settings: RunSettings
) -> SetResult:
    """Warm up on the first input, measure the decode-step cost ratio, then run every sample (tqdm bar)."""
    result = SetResult(name)
    if not items:
        return result
    warmup = SetResult(f"{name}-warmup")
    run_sample(methods, target, draft, items[0], settings, warmup, 0)  # lazy hooks, allocator, first-call costs
    result.errors.update(warmup.errors)
    result.cost = decode_step_ms(target, draft, items[0].inputs)
    lossy = frozenset(m.name for m in methods if m.lossy)
    for index, item in enumerate(tqdm(items, desc=f"{name} ({items[0].video_tokens} video tokens)", unit="video")):
        runs = run_sample(methods, target, draft, item, settings, result, index)
        record = sample_record(item, runs, result, lossy)
        if settings.attention:
            record["attention"] = attention_concentration(target, item.inputs, item.object_mask)
        if settings.diagnostics_keep is not None:
            record["lvspec_diagnostics"] = lvspec_diagnostics(target, draft, item, settings, record["ar_tokens"])
        result.samples.append(record)
    return result


def lvspec_diagnostics(target, draft, item: BenchInput, settings: RunSettings, ar_tokens: list[int]) -> dict:
    """Strict rejections at the diagnostics keep, and the visual relevance of every AR token (measure.py)."""
    rejected = strict_rejections(target, draft, item.inputs, settings.diagnostics_keep, settings.gamma,
                                 settings.max_new_tokens, settings.tokenizer)
    relevance = generated_relevance(target, item.inputs, ar_tokens)
    return {"rejections": rejected["rejections"], "matches_ar": rejected["tokens"] == ar_tokens,
            "accept_histogram": rejected["accept_histogram"], "relevance_own": relevance["own"],
            "relevance_predicting": relevance["predicting"]}


def annotate_captions(result: SetResult, tokenizer) -> None:
    """Decode AR's output per sample and, where a ground-truth caption exists (testbed), record whether it matches.
    Outputs that differ from AR (lossy rows) get their own decoded ``text``."""
    for record in result.samples:
        text = tokenizer.decode(record["ar_tokens"], skip_special_tokens=True).strip()
        record["ar_text"] = text
        if record["reference_caption"] is not None:
            record["ar_equals_reference"] = text == record["reference_caption"]
        for entry in record["methods"].values():
            if "tokens" in entry:
                entry["text"] = tokenizer.decode(entry["tokens"], skip_special_tokens=True).strip()


def set_threads(threads: int) -> None:
    """Tiny models are per-op-overhead bound: one thread is usually fastest and keeps timings stable."""
    torch.set_num_threads(threads)

"""The decoding methods compared by the benchmark, and one timed greedy run of a method on one input."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

import specvlm_hf

AR = "ar"
AR_PREFILL = "ar-prefill"  # AR with max_new_tokens=1: the AR prefill time, subtracted for decode-only speedups
STOCK = "stock-assisted"
FULL = "sd-full"


@dataclass(frozen=True)
class Method:
    """One way of decoding. ``kind``: "ar" (target alone), "stock" (HF assisted, draft blind to the video) or
    "sd" (specvlm_hf with ``video_pruning``; ``self_spec`` = the target drafts for itself). ``verify="loose"`` =
    LVSpec's lossy rule with `relax_ratio`, `shift_window` and `loose_rule` (other loose settings at their defaults)."""

    name: str
    kind: str
    keep: float | None = None
    scorer: str | None = None
    self_spec: bool = False
    stage1_max_share: float = 1.0
    stage1_rule: str = "adaptive"
    verify: str = "strict"
    relax_ratio: float = 0.0
    shift_window: int = 0
    loose_rule: str = "any"

    @property
    def is_speculative(self) -> bool:
        return self.kind in ("stock", "sd")

    @property
    def is_loose(self) -> bool:
        return self.verify == "loose"

    @property
    def lossy(self) -> bool:
        """Loose rows may differ from AR by design, except relax 0 / shift 0, which must equal strict (and AR)."""
        return self.is_loose and not (self.relax_ratio == 0 and self.shift_window == 0)


PAPER_LABEL = "verifier/paper"  # the verifier scorer with SpecVLM's Stage I rule (PruneConfig(stage1_rule="paper"))


def capped_label(share: float) -> str:
    """Scorer label of the verifier scorer with the paper's Stage I rule capped at `share` of the budget
    (``PruneConfig(stage1_rule="paper", stage1_max_share=share)``)."""
    return f"verifier/cap{share:g}"


def scorer_labels(config: dict) -> list[str]:
    """The scorer labels of a run's config: its --scorers, the paper's rule (when the verifier runs; runs before
    issue 15 had none: their `verifier` *was* the paper's rule), then the capped paper variants."""
    paper = [PAPER_LABEL] if "verifier" in config["scorers"] and not config.get("no_paper", True) else []
    return [*config["scorers"], *paper, *(capped_label(c) for c in config.get("stage1_caps", []))]


def pruned_name(keep: float, scorer: str, self_spec: bool = False) -> str:
    """Method name of pruned SD, e.g. ``sd-verifier-0.1``, ``sd-verifier/cap0.5-0.1`` or ``self-verifier-0.1``."""
    return f"{'self' if self_spec else 'sd'}-{scorer}-{keep:g}"


def build_methods(keeps: list[float], scorers: list[str], stock: bool = True, self_spec: bool = True,
                  stage1_caps: list[float] = (), paper: bool = True) -> list[Method]:
    """AR, its prefill, stock assisted, full-video SD, pruned SD per keep x scorer (plus, with the verifier scorer,
    the paper's Stage I rule and that rule capped at each of `stage1_caps`), self-speculation at keeps[0]."""
    methods = [Method(AR, "ar"), Method(AR_PREFILL, "ar")]
    if stock:
        methods.append(Method(STOCK, "stock"))
    methods.append(Method(FULL, "sd", keep=1.0, scorer="verifier"))
    for k in keeps:
        methods += [Method(pruned_name(k, s), "sd", keep=k, scorer=s) for s in scorers]
        if paper and "verifier" in scorers:
            methods.append(Method(pruned_name(k, PAPER_LABEL), "sd", keep=k, scorer="verifier", stage1_rule="paper"))
        methods += [Method(pruned_name(k, capped_label(c)), "sd", keep=k, scorer="verifier", stage1_max_share=c,
                           stage1_rule="paper") for c in stage1_caps]
    if self_spec:
        methods.append(Method(pruned_name(keeps[0], "verifier", True), "sd", keeps[0], "verifier", self_spec=True))
    return methods


LOOSE_DEFAULTS = {k: getattr(specvlm_hf.PruneConfig(), k) for k in ("relax_ratio", "shift_window", "loose_rule")}


def loose_name(relax_ratio: float, shift_window: int, rule: str = "any") -> str:
    """Method name of a loose row, e.g. ``loose-r0.7-w1`` (rule any) or ``loose-topk-r0.7-w1`` (target_topk)."""
    return f"loose-{'' if rule == 'any' else 'topk-'}r{relax_ratio:g}-w{shift_window}"


def is_loose_name(name: str) -> bool:
    return name.startswith("loose-")


def loose_default_name(rule: str = "any") -> str:
    """The row at PruneConfig's default loose settings (relax 0.7, shift 1) with `rule`."""
    return loose_name(LOOSE_DEFAULTS["relax_ratio"], LOOSE_DEFAULTS["shift_window"], rule)


def build_loose_methods(keep: float, relax_ratios: list[float], shift_windows: list[int], rule: str = "any",
                        topk_default: bool = True) -> list[Method]:
    """The LVSpec sweep at one keep ratio with the verifier scorer (its strict twin is ``sd-verifier-<keep>``):
    relax_ratios x shift_windows with `rule`, plus (when `rule` is ``any`` and `topk_default`) a ``target_topk`` row
    at the default relax ratio and shift window."""
    grid = [(r, w, rule) for r in relax_ratios for w in shift_windows]
    if rule == "any" and topk_default:
        grid.append((LOOSE_DEFAULTS["relax_ratio"], LOOSE_DEFAULTS["shift_window"], "target_topk"))
    return [Method(loose_name(r, w, g), "sd", keep=keep, scorer="verifier", verify="loose", relax_ratio=r,
                   shift_window=w, loose_rule=g) for r, w, g in grid]


@dataclass
class Run:
    """What one method produced on one input: generated tokens, wall time and its counters."""

    tokens: list[int]
    seconds: float
    stats: dict[str, Any] | None = None  # SpecStats.to_dict() for "sd"
    target_forwards: int | None = None  # counted for "stock" (it keeps no SpecStats)
    extra: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def count_forwards(model: torch.nn.Module) -> Iterator[list[int]]:
    """Count `model`'s forward calls inside the block (a one-element list, updated in place)."""
    counter = [0]

    def hook(*_: Any) -> None:
        counter[0] += 1

    handle = model.register_forward_hook(hook)
    try:
        yield counter
    finally:
        handle.remove()


@contextlib.contextmanager
def stock_assistant_settings(draft: torch.nn.Module, gamma: int) -> Iterator[None]:
    """Stock assisted generation reads gamma from the *assistant's* generation_config: set it for the block only.
    Everything else (e.g. the confidence threshold) stays at the stock defaults users get today."""
    config = draft.generation_config
    saved = (config.num_assistant_tokens, config.num_assistant_tokens_schedule)
    config.num_assistant_tokens, config.num_assistant_tokens_schedule = gamma, "constant"
    try:
        yield
    finally:
        config.num_assistant_tokens, config.num_assistant_tokens_schedule = saved


def timed_generate(model: torch.nn.Module, inputs: dict[str, torch.Tensor], **kwargs: Any) -> tuple[list[int], float]:
    """Greedy ``model.generate``; returns the generated token ids (prompt removed) and the wall time in seconds."""
    prompt_length = inputs["input_ids"].shape[1]
    start = time.perf_counter()
    output = model.generate(**inputs, do_sample=False, **kwargs)
    seconds = time.perf_counter() - start
    return output[0, prompt_length:].tolist(), seconds


@torch.inference_mode()
def run_method(
    method: Method,
    target: torch.nn.Module,
    draft: torch.nn.Module,
    inputs: dict[str, torch.Tensor],
    max_new_tokens: int,
    gamma: int,
    tokenizer: Any = None,
) -> Run:
    """Run `method` once on `inputs` (greedy, batch 1). Loose methods need the `tokenizer` (its special tokens)."""
    if method.name == AR_PREFILL:
        tokens, seconds = timed_generate(target, inputs, max_new_tokens=1)
        return Run(tokens, seconds)
    if method.kind == "ar":
        tokens, seconds = timed_generate(target, inputs, max_new_tokens=max_new_tokens)
        return Run(tokens, seconds)
    if method.kind == "stock":
        with stock_assistant_settings(draft, gamma), count_forwards(target) as forwards:
            tokens, seconds = timed_generate(target, inputs, max_new_tokens=max_new_tokens, assistant_model=draft)
        return Run(tokens, seconds, target_forwards=forwards[0])
    loose = {"verify": "loose", "relax_ratio": method.relax_ratio, "shift_window": method.shift_window,
             "loose_rule": method.loose_rule} if method.is_loose else {}
    extra = {"tokenizer": tokenizer} if method.is_loose else {}
    config = specvlm_hf.PruneConfig(keep_ratio=method.keep, scorer=method.scorer, num_draft_tokens=gamma,
                                    stage1_max_share=method.stage1_max_share, stage1_rule=method.stage1_rule, **loose)
    assistant = target if method.self_spec else draft
    tokens, seconds = timed_generate(
        target, inputs, max_new_tokens=max_new_tokens, assistant_model=assistant, video_pruning=config, **extra
    )
    return Run(tokens, seconds, stats=specvlm_hf.last_stats(target).to_dict())

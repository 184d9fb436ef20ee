"""`SpecStats`: what one `generate(..., video_pruning=...)` call did, and where its time went."""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import torch


@dataclass
class SpecStats:
    """Counters and timings of the last speculative ``generate`` call with ``video_pruning``.

    Counting rules (docs/design.md §6):
        new_tokens: tokens the call generated.
        rounds: target verification forwards after the prefill.
        drafted / accepted: draft tokens proposed / committed to the output.
        mean_accepted_length: (new_tokens - 1) / rounds — tokens per verification forward, bonus included,
            the prefill's token excluded (tau).
        accepted_per_round: accepted / rounds — bonus excluded (the paper code's tau).
        acceptance_rate: accepted / drafted.
        accept_histogram[i]: rounds that accepted exactly i drafts.
        relaxed_accepted / shift_accepted: of `accepted`, the drafted tokens that differed from the target's choice and
            were committed by the loose rule (relaxed filler) or by position-shift tolerance (``verify="loose"`` only;
            0 in strict mode).
        video_tokens / kept_video_tokens: placeholders in the prompt / shown to the draft.
        target_prefill_s: the target's prefill forward, attention capture included.
        capture_s: the side computation of the capture (part of target_prefill_s).
        draft_prefill_s: the draft's vision tower + prefill on the pruned prompt.
        draft_s: the draft's decode forwards.
        verify_s: the target's verification forwards (and the stock bookkeeping around them).
        overhead_s: time in our code outside model forwards (selection, logits processing, cache rollback).
    Ratios are 0.0 when their denominator is 0.

    On an accelerator the host only queues kernels, so the times include the device's work: target_prefill_s,
    verify_s and draft_prefill_s synchronise the device where they are recorded (once per round, once per call);
    capture_s and draft_s, recorded per layer and per drafted token, are timed with device events instead, read once
    at the end of the prefill / of the call (`DeviceTimer`). On the CPU all of them are plain host wall time.
    """

    new_tokens: int = 0
    rounds: int = 0
    drafted: int = 0
    accepted: int = 0
    accept_histogram: list[int] = field(default_factory=list)
    relaxed_accepted: int = 0
    shift_accepted: int = 0
    video_tokens: int = 0
    kept_video_tokens: int = 0
    target_prefill_s: float = 0.0
    capture_s: float = 0.0
    draft_prefill_s: float = 0.0
    draft_s: float = 0.0
    verify_s: float = 0.0
    overhead_s: float = 0.0

    @property
    def mean_accepted_length(self) -> float:
        return (self.new_tokens - 1) / self.rounds if self.rounds else 0.0

    @property
    def accepted_per_round(self) -> float:
        return self.accepted / self.rounds if self.rounds else 0.0

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.drafted if self.drafted else 0.0

    @property
    def _loose_counts(self) -> bool:
        return bool(self.relaxed_accepted or self.shift_accepted)

    def record_round(self, drafted: int, accepted: int) -> None:
        """Count one verification round that proposed `drafted` tokens and committed `accepted` of them."""
        self.rounds += 1
        self.drafted += drafted
        self.accepted += accepted
        if len(self.accept_histogram) <= accepted:
            self.accept_histogram.extend([0] * (accepted + 1 - len(self.accept_histogram)))
        self.accept_histogram[accepted] += 1

    def to_dict(self) -> dict[str, Any]:
        """All fields and derived ratios, JSON-serialisable."""
        out = asdict(self)
        out["mean_accepted_length"] = self.mean_accepted_length
        out["accepted_per_round"] = self.accepted_per_round
        out["acceptance_rate"] = self.acceptance_rate
        return out

    def __repr__(self) -> str:
        return (
            f"SpecStats(new_tokens={self.new_tokens}, rounds={self.rounds}, tau={self.mean_accepted_length:.2f}, "
            f"accepted/round={self.accepted_per_round:.2f}, acceptance={self.acceptance_rate:.1%} "
            f"({self.accepted}/{self.drafted}), histogram={self.accept_histogram}, "
            f"{f'loose: relaxed={self.relaxed_accepted} shifted={self.shift_accepted}, ' if self._loose_counts else ''}"
            f"video_tokens={self.kept_video_tokens}/{self.video_tokens} kept, "
            f"time[s]: target_prefill={self.target_prefill_s:.3f} (capture={self.capture_s:.3f}), "
            f"draft_prefill={self.draft_prefill_s:.3f}, draft={self.draft_s:.3f}, verify={self.verify_s:.3f}, "
            f"overhead={self.overhead_s:.3f})"
        )


# -- timing on accelerators -------------------------------------------------------------------------------------------


def _on_host(device: torch.device) -> bool:
    return device.type in ("cpu", "meta")


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on `device` (a no-op on the CPU), so that a host clock read next covers it.

    Called only where a SpecStats time is recorded once per verification round or per call (cost: one host
    synchronisation there, where the stock loop already waits for the verification result); never per drafted token.
    """
    if not _on_host(device):
        torch.accelerator.synchronize(device)


def _recorded_event(device: torch.device) -> Any:
    """A timing event recorded now on `device`'s current stream."""
    event = torch.Event(device=device, enable_timing=True)
    event.record(torch.accelerator.current_stream(device))
    return event


class DeviceTimer:
    """Total seconds of timed sections, the device's work included, without a host synchronisation per section.

    On the CPU a section is host wall time. On an accelerator each section is bracketed by two timing events on the
    device's current stream; `seconds` reads them (waiting for the last one) — call it where the total is recorded.
    """

    def __init__(self) -> None:
        self._seconds = 0.0
        self._pending: list[tuple[Any, Any]] = []

    @contextlib.contextmanager
    def section(self, device: torch.device) -> Iterator[None]:
        if _on_host(device):
            start = time.perf_counter()
            try:
                yield
            finally:
                self._seconds += time.perf_counter() - start
            return
        begin = _recorded_event(device)
        try:
            yield
        finally:
            self._pending.append((begin, _recorded_event(device)))

    @property
    def seconds(self) -> float:
        for begin, end in self._pending:
            end.synchronize()
            self._seconds += begin.elapsed_time(end) / 1000.0  # milliseconds
        self._pending.clear()
        return self._seconds


# Kept outside the model so that we never add attributes to a user's model.
_LAST_STATS: weakref.WeakKeyDictionary[torch.nn.Module, SpecStats] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def record_last_stats(model: torch.nn.Module, stats: SpecStats) -> None:
    with _LOCK:
        _LAST_STATS[model] = stats


def last_stats(model: torch.nn.Module) -> SpecStats:
    """The `SpecStats` of `model`'s last ``generate`` call with ``video_pruning``.

    Raises ``LookupError`` if the model never ran such a call.
    """
    with _LOCK:
        stats = _LAST_STATS.get(model)
    if stats is None:
        raise LookupError(
            "No speculative call recorded for this model: call model.generate(..., assistant_model=draft, "
            "video_pruning=PruneConfig(...)) first."
        )
    return stats

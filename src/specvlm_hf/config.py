"""`PruneConfig`: the one validated, frozen configuration of verifier-guided video-token pruning."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from .pruning import SCORERS, STAGE1_RULES

POSITION_MODES = ("original", "compact")
VERIFY_MODES = ("strict", "loose")
LOOSE_RULES = ("any", "target_topk")
LOOSE_ONLY_FIELDS = ("relax_ratio", "relevance_top_n", "loose_rule", "loose_top_k", "shift_window", "protect_tokens")


@dataclass(frozen=True)
class PruneConfig:
    """How the draft model's view of the video is pruned during speculative decoding.

    Pass it to ``generate`` as ``video_pruning=PruneConfig(...)`` together with ``assistant_model=``.

    Args:
        keep_ratio: share of the video tokens the draft sees, in (0, 1]. The budget is
            ``max(1, int(N * keep_ratio))`` of the N video tokens (global over all videos of the prompt,
            at least one token per video).
        stage1_mass: Stage I (score-guided) takes the smallest set of top-scored video tokens whose
            share of the score mass reaches this value. ``None`` means 0.4, or 0.5 when
            ``keep_ratio > 0.25`` (the paper's code). In (0, 1].
        stage1_max_share: caps Stage I at this share of the budget so that Stage II (spatially uniform) always
            gets the rest. 1.0 means no cap. In (0, 1].
        stage1_rule: ``"paper"`` (default): SpecVLM's rule, Stage I capped only by the budget (and
            ``stage1_max_share``). ``"adaptive"``: unless the scores are concentrated (the top 10% of the video
            tokens hold at least half of the mass, the paper's premise), Stage I keeps at most
            ``ceil(0.75 sqrt(k))`` of the k kept tokens and Stage II spreads the rest; with concentrated scores it
            selects what ``"paper"`` selects. The default stays ``"paper"`` until the selection study
            (``specvlm-bench --study selection``) and a full benchmark run have measured the alternative.
        scorer: ``"verifier"`` (the target's attention from the query tokens; Stage I + Stage II),
            ``"similarity"`` (attention-free: the target's hidden states of the video tokens compared with the
            query tokens'; works with every attention kernel, flash-attention included; Stage I + Stage II),
            ``"uniform"`` (Stage II only), ``"random"`` (seeded by ``seed``) or ``"topk"`` (top attention only).
        layers: ``"all"`` or a sequence of target decoder-layer indices whose attention (``"verifier"``,
            ``"topk"``) or output hidden states (``"similarity"``) are scored and averaged.
        positions: ``"original"`` keeps each kept token's original position ids (equal to masking the pruned
            keys out of the full prompt); ``"compact"`` re-indexes the pruned prompt contiguously.
        num_draft_tokens: tokens the draft proposes per verification round (gamma), at least 1.
        seed: seed of the ``"random"`` scorer.

    Verification (the target checks every drafted token either way):
        verify: ``"strict"`` (default; lossless: greedy output equals the target alone, sampling its distribution) or
            ``"loose"`` (LVSpec, **lossy**, greedy only): visually relevant drafted tokens ("anchors") must match
            exactly, the least relevant ones may differ. The fields below apply to ``"loose"`` only.
        relax_ratio: share of each verification block's drafted tokens (the least visually relevant,
            ``floor(relax_ratio * n)`` of the n drafted) that are relaxed; in [0, 1].
        relevance_top_n: a drafted token's visual relevance is the mean of its top-``relevance_top_n`` cosine
            similarities to the visual (video and image) tokens (target last-layer hidden states); >= 1. A prompt
            without visual tokens relaxes nothing.
        loose_rule: at a relaxed mismatch, ``"any"`` accepts the drafted token; ``"target_topk"`` accepts it only if it
            is among the target's top ``loose_top_k`` tokens there. Either way never a token the target's logits
            processors forbid (score -inf).
        loose_top_k: k of ``"target_topk"``; >= 1.
        shift_window: a mismatched drafted token is accepted as an inserted (or swapped) word when the target's
            token at that position is drafted at most this many positions later and the next
            ``min(shift_window, remaining)`` (at least one) drafted tokens match exactly (re-synchronisation).
            0 disables it; >= 0.
        protect_tokens: token ids never relaxed or shifted (e.g. negations: see `word_token_ids`), in addition to
            eos/bos/pad, the model config's special token ids and the special tokens of the tokenizer that loose
            calls must pass as ``generate(..., tokenizer=...)``.
    """

    keep_ratio: float = 0.1
    stage1_mass: float | None = None
    stage1_max_share: float = 1.0
    stage1_rule: str = "paper"
    scorer: str = "verifier"
    layers: str | tuple[int, ...] = "all"
    positions: str = "original"
    num_draft_tokens: int = 5
    seed: int = 0
    verify: str = "strict"
    relax_ratio: float = 0.7
    relevance_top_n: int = 10
    loose_rule: str = "any"
    loose_top_k: int = 5
    shift_window: int = 1
    protect_tokens: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        _check_unit_interval("keep_ratio", self.keep_ratio)
        if self.stage1_mass is not None:
            _check_unit_interval("stage1_mass", self.stage1_mass, none_hint=True)
        _check_unit_interval("stage1_max_share", self.stage1_max_share)
        if self.stage1_rule not in STAGE1_RULES:
            raise ValueError(
                f"PruneConfig.stage1_rule must be one of {STAGE1_RULES}, got {self.stage1_rule!r}. Use 'paper' for "
                "SpecVLM's rule (Stage I capped only by the budget)."
            )
        if self.scorer not in SCORERS:
            raise ValueError(f"PruneConfig.scorer must be one of {SCORERS}, got {self.scorer!r}.")
        if self.positions not in POSITION_MODES:
            raise ValueError(f"PruneConfig.positions must be one of {POSITION_MODES}, got {self.positions!r}.")
        object.__setattr__(self, "layers", _normalise_layers(self.layers))
        _check_int("num_draft_tokens", self.num_draft_tokens, minimum=1)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"PruneConfig.seed must be an int, got {self.seed!r}.")
        if self.verify not in VERIFY_MODES:
            raise ValueError(f"PruneConfig.verify must be one of {VERIFY_MODES}, got {self.verify!r}.")
        if isinstance(self.relax_ratio, bool) or not isinstance(self.relax_ratio, (int, float)) \
                or math.isnan(self.relax_ratio) or not 0.0 <= self.relax_ratio <= 1.0:
            raise ValueError(f"PruneConfig.relax_ratio must be a number in [0, 1], got {self.relax_ratio!r}.")
        _check_int("relevance_top_n", self.relevance_top_n, minimum=1)
        if self.loose_rule not in LOOSE_RULES:
            raise ValueError(f"PruneConfig.loose_rule must be one of {LOOSE_RULES}, got {self.loose_rule!r}.")
        _check_int("loose_top_k", self.loose_top_k, minimum=1)
        _check_int("shift_window", self.shift_window, minimum=0)
        object.__setattr__(self, "protect_tokens", _normalise_token_ids(self.protect_tokens))
        ignored = [f.name for f in fields(self) if f.name in LOOSE_ONLY_FIELDS and getattr(self, f.name) != f.default]
        if ignored and not self.is_loose:
            warnings.warn(
                f"PruneConfig: {', '.join(ignored)} {'applies' if len(ignored) == 1 else 'apply'} to verify='loose' "
                f"only and {'is' if len(ignored) == 1 else 'are'} ignored with verify={self.verify!r}. Pass "
                "verify='loose' or leave them out.",
                UserWarning,
                stacklevel=3,
            )

    @property
    def is_loose(self) -> bool:
        """Whether verification is the lossy LVSpec rule (our own decoding loop runs then)."""
        return self.verify == "loose"

    @property
    def needs_verifier_attention(self) -> bool:
        """Whether the target's attention must be captured during its prefill."""
        return self.scorer in ("verifier", "topk")

    @property
    def needs_target_capture(self) -> bool:
        """Whether the scorer reads the target's prefill at all (its attention, or its hidden states)."""
        return self.needs_verifier_attention or self.scorer == "similarity"

    def layer_indices(self, num_layers: int) -> list[int]:
        """The target decoder layers to average over; raises if an index is out of range."""
        if self.layers == "all":
            return list(range(num_layers))
        out = []
        for index in self.layers:
            if not -num_layers <= index < num_layers:
                raise ValueError(
                    f"PruneConfig.layers contains {index}, but the target has {num_layers} decoder layers: "
                    f"use indices in [-{num_layers}, {num_layers - 1}] or layers='all'."
                )
            out.append(index % num_layers)
        return sorted(set(out))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (so the config may travel inside a ``GenerationConfig``)."""
        out = asdict(self)
        if out["layers"] != "all":
            out["layers"] = list(out["layers"])
        out["protect_tokens"] = list(out["protect_tokens"])
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PruneConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Unknown PruneConfig field(s) {unknown}; valid fields are {sorted(known)}.")
        return cls(**dict(data))

    @classmethod
    def coerce(cls, value: Any, *, argument: str = "video_pruning") -> PruneConfig:
        """Accept a ``PruneConfig`` or its dict form (e.g. from a reloaded ``GenerationConfig``)."""
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            return cls.from_dict(value)
        raise TypeError(
            f"`{argument}` must be a specvlm_hf.PruneConfig (or its to_dict() form), got {type(value).__name__}. "
            f"Use {argument}=specvlm_hf.PruneConfig(keep_ratio=0.1)."
        )


def _check_unit_interval(name: str, value: Any, *, none_hint: bool = False) -> None:
    hint = " or None" if none_hint else ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"PruneConfig.{name} must be a number in (0, 1]{hint}, got {value!r}.")
    if math.isnan(value) or not 0.0 < value <= 1.0:
        raise ValueError(f"PruneConfig.{name} must be in (0, 1]{hint}, got {value!r}.")


def _check_int(name: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"PruneConfig.{name} must be an int >= {minimum}, got {value!r}.")
    if value < minimum:
        raise ValueError(f"PruneConfig.{name} must be >= {minimum}, got {value}.")


def _normalise_token_ids(ids: Any) -> tuple[int, ...]:
    if isinstance(ids, (str, bytes)) or not isinstance(ids, (Sequence, set, frozenset)):
        raise ValueError(
            f"PruneConfig.protect_tokens must be a sequence of token ids (ints), got {ids!r}. To protect words, "
            "pass specvlm_hf.word_token_ids(tokenizer, ['not', 'no'])."
        )
    if any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in ids):
        raise ValueError(
            f"PruneConfig.protect_tokens must contain non-negative int token ids only, got {ids!r}. To protect words, "
            "pass specvlm_hf.word_token_ids(tokenizer, ['not', 'no'])."
        )
    return tuple(sorted(set(ids)))


def _normalise_layers(layers: Any) -> str | tuple[int, ...]:
    if layers == "all":
        return "all"
    if isinstance(layers, str) or not isinstance(layers, Sequence) or len(layers) == 0:
        raise ValueError(f"PruneConfig.layers must be 'all' or a non-empty sequence of layer indices, got {layers!r}.")
    if any(isinstance(i, bool) or not isinstance(i, int) for i in layers):
        raise ValueError(f"PruneConfig.layers must contain ints only, got {layers!r}.")
    return tuple(layers)

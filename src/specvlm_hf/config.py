"""`PruneConfig`: the one validated, frozen configuration of verifier-guided video-token pruning."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from .pruning import SCORERS

POSITION_MODES = ("original", "compact")


@dataclass(frozen=True)
class PruneConfig:
    """How the draft model's view of the video is pruned during speculative decoding.

    Pass it to ``generate`` as ``video_pruning=PruneConfig(...)`` together with ``assistant_model=``.

    Args:
        keep_ratio: share of the video tokens the draft sees, in (0, 1]. The budget is
            ``max(1, int(N * keep_ratio))`` of the N video tokens (global over all videos of the prompt,
            at least one token per video).
        stage1_mass: Stage I (verifier-guided) takes the smallest set of top-attended video tokens whose
            share of the verifier's attention mass reaches this value. ``None`` means 0.4, or 0.5 when
            ``keep_ratio > 0.25`` (the paper's code). In (0, 1].
        stage1_max_share: caps Stage I at this share of the budget so that Stage II (spatially uniform) always
            gets the rest, even when the verifier's attention is diffuse. 1.0 (the paper) means no cap. In (0, 1].
        scorer: ``"verifier"`` (Stage I + Stage II), ``"uniform"`` (Stage II only), ``"random"`` (seeded by
            ``seed``) or ``"topk"`` (Stage I by rank only).
        layers: ``"all"`` or a sequence of target decoder-layer indices whose attention is averaged.
        positions: ``"original"`` keeps each kept token's original position ids (equal to masking the pruned
            keys out of the full prompt); ``"compact"`` re-indexes the pruned prompt contiguously.
        num_draft_tokens: tokens the draft proposes per verification round (gamma), at least 1.
        seed: seed of the ``"random"`` scorer.
    """

    keep_ratio: float = 0.1
    stage1_mass: float | None = None
    stage1_max_share: float = 1.0
    scorer: str = "verifier"
    layers: str | tuple[int, ...] = "all"
    positions: str = "original"
    num_draft_tokens: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        _check_unit_interval("keep_ratio", self.keep_ratio)
        if self.stage1_mass is not None:
            _check_unit_interval("stage1_mass", self.stage1_mass, none_hint=True)
        _check_unit_interval("stage1_max_share", self.stage1_max_share)
        if self.scorer not in SCORERS:
            raise ValueError(f"PruneConfig.scorer must be one of {SCORERS}, got {self.scorer!r}.")
        if self.positions not in POSITION_MODES:
            raise ValueError(f"PruneConfig.positions must be one of {POSITION_MODES}, got {self.positions!r}.")
        object.__setattr__(self, "layers", _normalise_layers(self.layers))
        if isinstance(self.num_draft_tokens, bool) or not isinstance(self.num_draft_tokens, int):
            raise ValueError(
                f"PruneConfig.num_draft_tokens must be an int >= 1, got {self.num_draft_tokens!r}."
            )
        if self.num_draft_tokens < 1:
            raise ValueError(f"PruneConfig.num_draft_tokens must be >= 1, got {self.num_draft_tokens}.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"PruneConfig.seed must be an int, got {self.seed!r}.")

    @property
    def needs_verifier_attention(self) -> bool:
        """Whether the target's attention must be captured during its prefill."""
        return self.scorer in ("verifier", "topk")

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


def _normalise_layers(layers: Any) -> str | tuple[int, ...]:
    if layers == "all":
        return "all"
    if isinstance(layers, str) or not isinstance(layers, Sequence) or len(layers) == 0:
        raise ValueError(f"PruneConfig.layers must be 'all' or a non-empty sequence of layer indices, got {layers!r}.")
    if any(isinstance(i, bool) or not isinstance(i, int) for i in layers):
        raise ValueError(f"PruneConfig.layers must contain ints only, got {layers!r}.")
    return tuple(layers)

"""Which drafted tokens the target accepts: the strict rule, speculative sampling and LVSpec's loose rule, as tensor
functions.

The owned decoding loop (`decoding.py`) calls a verification object once per target forward:
``observe_prefill`` after the prefill, ``verify`` after every verification forward. Everything here works on one
block: the n drafted tokens ``d_0 .. d_{n-1}`` and the target's n+1 processed score rows, row i predicting the
token at drafted position i (row n is the bonus position after the whole block). ``t_i`` = argmax of row i.

Speculative sampling (``do_sample=True``) is algorithm 1 of Leviathan et al. (`speculative_sampling_block`): with
``p_i``/``q_i`` the softmax of the target's/draft's processed score rows, ``d_i`` is accepted with probability
``min(1, p_i(d_i) / q_i(d_i))``; at the first rejection the token is drawn from ``norm(max(0, p_i - q_i))`` and the
block ends; if all n are accepted the bonus is drawn from ``p_n``. Every committed token then has the target's
distribution, provided ``q_i`` is exactly the distribution ``d_i`` was drawn from.

Loose rule (README "Loose verification"), for each drafted position in order:

1. ``d_i == t_i``: accepted (exact).
2. Protected — ``d_i`` or ``t_i`` is eos/special/``protect_tokens`` — or ``d_i`` has score -inf in row i (a logits
   processor forbids it): rejected.
3. Relaxed position (the ``floor(relax_ratio * n)`` least visually relevant drafted tokens of the block) and the
   loose rule agrees (``any``; or ``target_topk``: ``d_i`` within row i's top ``loose_top_k``): accepted.
4. Position shift: the target's token ``t_i`` is drafted a little later, ``t_i == d_j`` for some
   ``i < j <= i + shift_window``, and the next ``min(shift_window, n - 1 - i)`` (at least one) drafted tokens equal
   their own ``t`` exactly (re-synchronisation): ``d_i`` is accepted as an inserted word (or the first of two swapped
   words). Why this direction: every row of a block is conditioned on the *drafted* prefix, so comparing ``d_i``
   with another row's ``t_j`` can only find a token the block already contains (a stutter); whether the target's
   own next word shows up in the draft shortly after is what tells an insertion or a swap apart from an error.
5. Otherwise acceptance stops here and the bonus token is ``t_i``.

The relevance that picks the relaxed positions is measured against the prompt's visual tokens (video and image
placeholders). A prompt without any has no visual anchor to measure against, so nothing is relaxed there (rule 3 is
off; rules 1, 2 and 4 apply).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from .config import PruneConfig

EXACT = "exact"
SAMPLED = "sampled"  # accepted by the speculative-sampling test (lossless, but not necessarily the target's argmax)
RELAXED = "relaxed"
SHIFTED = "shifted"


@dataclass
class BlockVerdict:
    """The outcome of verifying one block: the accepted drafted tokens (how each was accepted) and the bonus."""

    kinds: list[str]
    bonus: int

    @property
    def accepted(self) -> int:
        return len(self.kinds)


# -- pure functions ---------------------------------------------------------------------------------------------------


def normalised_rows(hidden: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit length in float32 (cosine similarity becomes a matrix product)."""
    return torch.nn.functional.normalize(hidden.float(), dim=-1)


def visual_relevance(drafted_hidden: torch.Tensor, video_unit: torch.Tensor, top_n: int) -> torch.Tensor:
    """Per drafted token: the mean of its top-`top_n` cosine similarities to the visual (video/image) tokens.

    `drafted_hidden` is ``(n, d)`` (target last-layer hidden states at the drafted positions), `video_unit` is
    ``(V, d)`` already normalised (`normalised_rows`). Cost O(n x V x d). Without visual tokens every score is 0.
    """
    n = drafted_hidden.shape[0]
    if video_unit.shape[0] == 0 or n == 0:
        return torch.zeros(n, device=drafted_hidden.device)
    similarity = normalised_rows(drafted_hidden).to(video_unit.device) @ video_unit.T
    return similarity.topk(min(top_n, video_unit.shape[0]), dim=-1).values.mean(dim=-1)


def relaxed_count(relax_ratio: float, n: int) -> int:
    """``floor(relax_ratio * n)``: how many of a block's n drafted tokens are relaxed."""
    # The epsilon keeps e.g. 0.58 * 50 (= 28.999999999999996 in floating point) at 29.
    return min(n, math.floor(relax_ratio * n + 1e-9))


def relaxed_positions(relevance: torch.Tensor, relax_ratio: float) -> torch.Tensor:
    """Bool mask of the ``floor(relax_ratio * n)`` least relevant drafted tokens (ties: the earlier one first)."""
    n = relevance.numel()
    count = relaxed_count(relax_ratio, n)
    mask = torch.zeros(n, dtype=torch.bool, device=relevance.device)
    if count:
        mask[torch.sort(relevance, stable=True).indices[:count]] = True
    return mask


def strict_block(drafted: torch.Tensor, target_scores: torch.Tensor) -> BlockVerdict:
    """Exact-match verification: the longest prefix where ``d_i == t_i``, then the target's token."""
    predictions = target_scores.argmax(dim=-1).tolist()
    kinds = []
    for d, t in zip(drafted.tolist(), predictions):
        if d != t:
            break
        kinds.append(EXACT)
    return BlockVerdict(kinds, predictions[len(kinds)])


def speculative_sampling_block(
    drafted: torch.Tensor,
    draft_scores: torch.Tensor | None,
    target_scores: torch.Tensor,
    *,
    ensemble_weight: float | None = None,
    generator: torch.Generator | None = None,
) -> BlockVerdict:
    """Speculative sampling of one block: algorithm 1 of Leviathan, Kalman & Matias, "Fast Inference from
    Transformers via Speculative Decoding" (ICML 2023, arXiv 2211.17192); module docstring.

    `drafted` ``(n,)``; `draft_scores` ``(n, vocab)``: the processed scores each ``d_i`` was drawn from (``q_i`` =
    their softmax; None only when n == 0); `target_scores` ``(n + 1, vocab)`` after the logits processors (``p_i``).
    Random draws use `generator` (default: torch's global RNG, so ``torch.manual_seed`` makes a call reproducible).

    `ensemble_weight` w (transformers' ``assistant_ensemble_weight``, DIVERSE, arXiv 2604.07622 — lossy by design)
    verifies against ``v = w p + (1 - w) q`` instead of ``p``: acceptance ``min(1, (1 - w) + w p(d) / q(d))``; the
    residual ``norm(max(0, v - q))`` equals ``norm(max(0, p - q))``.
    """
    n = drafted.numel()
    target_probs = torch.softmax(target_scores.float(), dim=-1)
    if n:
        draft_probs = torch.softmax(draft_scores.float().to(target_probs.device), dim=-1)
        rows = torch.arange(n, device=target_probs.device)
        tokens = drafted.to(target_probs.device)
        ratio = target_probs[rows, tokens] / draft_probs[rows, tokens]
        if ensemble_weight is not None:
            ratio = (1.0 - ensemble_weight) + ensemble_weight * ratio
        uniform = torch.rand(n, device=target_probs.device, generator=generator)
        rejected = (uniform > ratio).tolist()
        accepted = rejected.index(True) if True in rejected else n
    else:
        accepted = 0
    if accepted < n:
        residual = torch.clamp(target_probs[accepted] - draft_probs[accepted], min=0)
        # p == q up to rounding leaves (almost) no residual mass; its normalisation would be 0/0. The target's own
        # distribution is then the right one (and the event has probability ~0 in lossless mode).
        next_probs = residual if float(residual.sum()) > torch.finfo(residual.dtype).tiny else target_probs[accepted]
    else:
        next_probs = target_probs[n]
    bonus = int(torch.multinomial(next_probs, num_samples=1, generator=generator))
    return BlockVerdict([SAMPLED] * accepted, bonus)


@dataclass(frozen=True)
class LooseRule:
    """The loose rule's parameters (from `PruneConfig`) and the protected token ids of one call."""

    relax_ratio: float = 0.7
    loose_rule: str = "any"
    loose_top_k: int = 5
    shift_window: int = 1
    protected: frozenset[int] = field(default_factory=frozenset)

    @classmethod
    def from_config(cls, config: PruneConfig, protected: Iterable[int] = ()) -> LooseRule:
        return cls(config.relax_ratio, config.loose_rule, config.loose_top_k, config.shift_window,
                   frozenset(protected) | frozenset(config.protect_tokens))


def loose_block(drafted: torch.Tensor, target_scores: torch.Tensor, relaxed: torch.Tensor, rule: LooseRule
                ) -> BlockVerdict:
    """LVSpec verification of one block (module docstring, rules 1-5).

    `drafted` ``(n,)``, `target_scores` ``(n + 1, vocab)`` after the logits processors, `relaxed` ``(n,)`` bool.
    """
    n = drafted.numel()
    draft = drafted.tolist()
    predictions = target_scores.argmax(dim=-1).tolist()
    is_relaxed = relaxed.tolist()
    kinds: list[str] = []
    for i, (d, t) in enumerate(zip(draft, predictions)):
        if d == t:
            kinds.append(EXACT)
            continue
        if d in rule.protected or t in rule.protected or not math.isfinite(float(target_scores[i, d])):
            break
        if is_relaxed[i] and _loose_rule_accepts(target_scores[i], d, rule):
            kinds.append(RELAXED)
            continue
        if _shift_accepts(i, draft, predictions, rule.shift_window, n):
            kinds.append(SHIFTED)
            continue
        break
    return BlockVerdict(kinds, predictions[len(kinds)])


def _loose_rule_accepts(scores: torch.Tensor, token: int, rule: LooseRule) -> bool:
    if rule.loose_rule == "any":
        return True
    top = scores.topk(min(rule.loose_top_k, scores.numel())).indices
    return bool((top == token).any())


def _shift_accepts(i: int, draft: list[int], predictions: list[int], window: int, n: int) -> bool:
    """Rule 4: the target's token at i is drafted within the next `window` positions, and the draft re-synchronises."""
    if window == 0 or predictions[i] not in draft[i + 1 : i + 1 + window]:
        return False
    following = min(window, n - 1 - i)
    # Re-synchronisation: with nothing after it in the block there is no evidence the sequence is back on track.
    return following >= 1 and all(draft[i + k] == predictions[i + k] for k in range(1, following + 1))


# -- per-call verification objects used by the owned loop -------------------------------------------------------------


class StrictVerification:
    """Exact match (the default greedy rule of the owned loop; equal to stock greedy assisted decoding)."""

    needs_hidden_states = False
    samples = False

    def observe_prefill(self, hidden: torch.Tensor | None) -> None:
        pass

    def verify(self, drafted: torch.Tensor, target_scores: torch.Tensor, hidden: torch.Tensor | None) -> BlockVerdict:
        return strict_block(drafted, target_scores)


class SpeculativeSampling:
    """Speculative sampling (``do_sample=True``): `speculative_sampling_block` on every block."""

    needs_hidden_states = False
    samples = True

    def __init__(self, ensemble_weight: float | None = None) -> None:
        self.ensemble_weight = ensemble_weight

    def observe_prefill(self, hidden: torch.Tensor | None) -> None:
        pass

    def verify(self, drafted: torch.Tensor, target_scores: torch.Tensor, hidden: torch.Tensor | None,
               draft_scores: torch.Tensor | None = None) -> BlockVerdict:
        """`draft_scores` ``(n, vocab)``: the processed scores each drafted token was drawn from."""
        return speculative_sampling_block(drafted, draft_scores, target_scores, ensemble_weight=self.ensemble_weight)


class LooseVerification:
    """LVSpec: exact on visual anchors, relaxed on the least visually relevant drafted tokens, shift tolerant.

    `visual_positions` index the prompt's video and image placeholders; their last-layer hidden states are kept
    (normalised) from the target's prefill. Without any, no drafted token is relaxed (module docstring).
    """

    needs_hidden_states = True
    samples = False

    def __init__(self, rule: LooseRule, relevance_top_n: int, visual_positions: torch.Tensor) -> None:
        self.rule = rule
        self.relevance_top_n = relevance_top_n
        self.visual_positions = visual_positions
        self.visual_unit: torch.Tensor | None = None

    def observe_prefill(self, hidden: torch.Tensor | None) -> None:
        """`hidden`: the prefill's last-layer hidden states ``(1, L, d)``."""
        self.visual_unit = normalised_rows(hidden[0, self.visual_positions.to(hidden.device)])

    def verify(self, drafted: torch.Tensor, target_scores: torch.Tensor, hidden: torch.Tensor | None) -> BlockVerdict:
        """`hidden`: the verification forward's last-layer hidden states, whose last n rows are the drafted tokens."""
        n = drafted.numel()
        if n == 0:
            return strict_block(drafted, target_scores)
        if self.visual_unit.shape[0] == 0:
            relaxed = torch.zeros(n, dtype=torch.bool)
        else:
            relevance = visual_relevance(hidden[0, -n:], self.visual_unit, self.relevance_top_n)
            relaxed = relaxed_positions(relevance, self.rule.relax_ratio)
        return loose_block(drafted, target_scores, relaxed, self.rule)


# -- protected tokens -------------------------------------------------------------------------------------------------


def protected_token_ids(model: torch.nn.Module, generation_config: Any, tokenizer: Any = None) -> set[int]:
    """Token ids the loose rule never relaxes: eos/bos/pad/decoder-start of the generation config, every
    ``*_token_id``/``*_token_index`` of the model config (video/image placeholders, vision start/end, ...), and, when
    the call passed ``tokenizer=`` (a tokenizer or a processor holding one), the tokenizer's special and added-special
    tokens."""
    ids: set[int] = set()
    for name in ("eos_token_id", "bos_token_id", "pad_token_id", "decoder_start_token_id"):
        ids |= _as_ids(getattr(generation_config, name, None))
    eos = getattr(generation_config, "_eos_token_tensor", None)
    if eos is not None:
        ids |= _as_ids(eos.tolist())
    configs = [model.config, model.config.get_text_config()]
    for config in configs:
        for name, value in vars(config).items():
            if name.endswith(("_token_id", "_token_index", "_token_ids")):
                ids |= _as_ids(value)
    tokenizer = special_tokens_source(tokenizer)
    if tokenizer is not None:
        ids |= set(tokenizer.all_special_ids)
        decoder = getattr(tokenizer, "added_tokens_decoder", {}) or {}
        ids |= {index for index, token in decoder.items() if getattr(token, "special", False)}
    return ids


def special_tokens_source(tokenizer: Any) -> Any:
    """The tokenizer that knows the special tokens: `tokenizer` itself, or the ``.tokenizer`` of a processor (which
    has no ``all_special_ids`` of its own); None if neither does."""
    for candidate in (tokenizer, getattr(tokenizer, "tokenizer", None)):
        if candidate is not None and hasattr(candidate, "all_special_ids"):
            return candidate
    return None


def _as_ids(value: Any) -> set[int]:
    if value is None or isinstance(value, bool):
        return set()
    if isinstance(value, int):
        return {value} if value >= 0 else set()
    if isinstance(value, torch.Tensor):
        return _as_ids(value.tolist())
    if isinstance(value, (list, tuple, set)):
        return {v for v in value if isinstance(v, int) and not isinstance(v, bool) and v >= 0}
    return set()


def word_token_ids(tokenizer: Any, words: Iterable[str]) -> list[int]:
    """Token ids of `words` as they appear in running text, for ``PruneConfig(protect_tokens=...)``.

    Each word is encoded bare, after a space and capitalised (``"not"``, ``" not"``, ``"Not"``, ``" Not"``), and every
    token of every variant is protected, so that no piece of the word can be relaxed away (``" isn't"`` may be
    ``" isn"`` + ``"'t"``; protecting only the first piece would let the draft drop the ``"'t"``). Pieces other words
    share (``" with"`` of ``" without"``) become protected there too, which only makes verification stricter.
    Whitespace-only pieces (a bare ``"Ġ"``/``"▁"`` boundary) and the tokenizer's unk token are skipped: they belong
    to no word.
    """
    ids: set[int] = set()
    unknown = getattr(tokenizer, "unk_token_id", None)
    for word in words:
        if not isinstance(word, str) or not word.strip():
            raise ValueError(f"word_token_ids needs non-empty strings, got {word!r}.")
        word = word.strip()
        for variant in {word, " " + word, word.capitalize(), " " + word.capitalize()}:
            for token in tokenizer.encode(variant, add_special_tokens=False):
                if token != unknown and tokenizer.decode([token]).strip():
                    ids.add(int(token))
    return sorted(ids)

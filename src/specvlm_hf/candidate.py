"""The candidate generator: pruned draft prompt, draft loop, cache rollback, stats.

It plugs into the stock ``_assisted_decoding`` loop of transformers (greedy strict calls) and into our own loop
(`decoding.py`: sampled and loose calls), which verify the candidates:

1. First iteration: arm the verifier attention capture and return no candidates, so the target prefills the
   full prompt *alone* and emits the first token (its prefill never carries draft tokens).
2. Second call: read the captured scores, select the kept video tokens (Stage I + II), and prefill the draft on
   the pruned prompt with its **own** vision features (from the snapshot of the raw inputs) at the kept rows.
3. Every call: roll the draft's own cache back to the accepted prefix, feed the tokens it has not seen, and draft
   gamma tokens one forward each, applying the target's logits processors to every drafted position. A drafted
   token that would stop generation ends the block: greedy drafts leave it to the target's bonus token, sampled
   drafts keep it as the last candidate (see `_draft`).
"""

from __future__ import annotations

import contextlib
import inspect
import time
from collections.abc import Mapping
from typing import Any

import torch
from transformers import DynamicCache
from transformers.generation.candidate_generator import CandidateGenerator
from transformers.generation.logits_process import LogitsProcessorList
from transformers.generation.utils import _slice_mm_encoder_output

from .capture import HiddenStateSimilarityCapture, VerifierAttentionCapture, query_positions
from .compat import CACHE_KEY
from .config import PruneConfig
from .families import FamilySpec
from .pruning import select_video_tokens
from .stats import DeviceTimer, SpecStats, synchronize


class DraftPositions:
    """Position ids of the draft's pruned sequence, derived from the target's prompt position ids.

    `prompt_positions` is what generate prepared for the target: ``(1, L)`` for 1-D families or ``(4, 1, L)``
    for M-RoPE families (row 0 = the text row transformers uses for masks). ``"original"`` keeps each kept
    token's position (the text row made contiguous); ``"compact"`` re-indexes every row contiguously. Generated
    tokens continue from the last prompt position + 1, as the target's own positions do.
    """

    def __init__(self, prompt_positions: torch.Tensor | None, keep_mask: torch.Tensor, mode: str) -> None:
        length = keep_mask.numel()
        if prompt_positions is None:
            prompt_positions = torch.arange(length, device=keep_mask.device)[None]
        self.ndim = prompt_positions.ndim
        self.rows = prompt_positions if prompt_positions.ndim == 3 else prompt_positions[None]  # (R, 1, L)
        self.has_text_row = self.rows.shape[0] == 4
        self.keep_mask = keep_mask
        self.mode = mode
        self.prompt_length = length
        self.removed = int((~keep_mask).sum())

    def _shape(self, rows: torch.Tensor) -> torch.Tensor:
        return rows if self.ndim == 3 else rows[0]

    def prompt(self) -> torch.Tensor:
        kept = self.rows[..., self.keep_mask]
        draft_length = kept.shape[-1]
        contiguous = torch.arange(draft_length, device=kept.device, dtype=kept.dtype).expand_as(kept[:1])
        if self.mode == "compact":
            kept = contiguous.expand_as(kept).clone()
        elif self.has_text_row:
            kept = kept.clone()
            kept[0] = contiguous[0]
        return self._shape(kept)

    def generated(self, start: int, count: int) -> torch.Tensor:
        """Positions of target-sequence indices ``start .. start+count-1`` (all >= the prompt length)."""
        offsets = torch.arange(count, device=self.rows.device, dtype=self.rows.dtype)
        draft_index = offsets + (start - self.removed)
        if self.mode == "compact":
            rows = draft_index.expand(self.rows.shape[0], 1, count).clone()
        else:
            rows = self.rows[..., -1:] + (start - self.prompt_length + 1) + offsets
            if self.has_text_row:
                rows[0] = draft_index
        return self._shape(rows)


class PrunedVideoCandidateGenerator(CandidateGenerator):
    """Drafts with `draft` on a verifier-pruned view of the video; the stock loop verifies with the target."""

    requires_model_outputs = True

    def __init__(
        self,
        *,
        target: torch.nn.Module,
        draft: torch.nn.Module,
        family: FamilySpec,
        prune_config: PruneConfig,
        raw_inputs: Mapping[str, Any],
        video_sizes: list[int] | None,
        input_ids: torch.LongTensor,
        generation_config: Any,
        logits_processor: LogitsProcessorList | None,
        model_kwargs: dict[str, Any],
        stats: SpecStats,
        stopping_criteria: Any = None,
    ) -> None:
        self.model_kwargs_overrides: dict[str, Any] = {}
        self.target = target
        self.draft = draft
        self.family = family
        self.prune_config = prune_config
        self.raw_inputs = raw_inputs
        self.video_sizes = video_sizes
        self.stats = stats
        self.logits_processor = logits_processor if logits_processor is not None else LogitsProcessorList()
        self.stopping_criteria = stopping_criteria
        self.do_sample = bool(generation_config.do_sample)
        self.max_length = int(generation_config.max_length)

        prompt = input_ids[0]
        self._prompt_ids = prompt
        self.prompt_length = prompt.numel()
        self.video_positions = (prompt == family.video_token_id(target.config)).nonzero().squeeze(1)
        self.prompt_positions = model_kwargs.get("position_ids")
        # Self-speculation: the target already encoded the raw inputs; reuse its features instead of re-running them.
        self.reusable_features = model_kwargs.get("mm_encoder_outputs") if draft is target else None
        self.target_vocab = target.config.get_text_config().vocab_size
        self.draft_vocab = draft.config.get_text_config().vocab_size
        # Inputs go to the draft's first device, as for any forward: under a device map, accelerate's hooks move each
        # module's inputs to that module's own device.
        self.draft_device = draft.device
        self._vocab_pad: torch.Tensor | None = None
        stats.video_tokens = self.video_positions.numel()

        self.capture: VerifierAttentionCapture | HiddenStateSimilarityCapture | None = None
        self.positions: DraftPositions | None = None
        self.cache: DynamicCache | None = None
        self.fed: list[int] = []  # generated tokens (target ids) already in the draft cache, in order
        self._verified = 0  # how many of `fed` the target has already accepted
        self.keep_mask: torch.Tensor | None = None
        self.kept_rows: torch.Tensor | None = None
        self._awaiting_prefill = True
        self._last_candidates = 0
        self._mark = 0.0
        self._own_seconds = 0.0
        self._draft_timer = DeviceTimer()
        self._random = torch.Generator().manual_seed(prune_config.seed)

    # -- the CandidateGenerator interface ------------------------------------------------------------------------

    @property
    def num_drafting_tokens(self) -> int:
        """Tokens drafted per round (transformers >= 5.25 reads it to size the target cache's rollback history)."""
        return self.prune_config.num_draft_tokens

    def get_candidates(
        self,
        input_ids: torch.LongTensor,
        model_kwargs: dict[str, Any] | None = None,
        model_outputs: Any = None,
        is_first_iteration: bool = False,
        n_last_matches: int = 0,
        **kwargs: Any,
    ) -> tuple[torch.LongTensor, torch.FloatTensor | None]:
        start = time.perf_counter()
        try:
            if is_first_iteration:
                self._arm_capture()
                self._last_candidates = 0
                return input_ids, None
            if self.positions is None:
                self._plan_pruned_prompt()
            # Never draft past max_length (as the stock assisted generator).
            budget = min(self.prune_config.num_draft_tokens, self.max_length - input_ids.shape[1] - 1)
            if budget <= 0:
                self._last_candidates = 0
                return input_ids, None
            candidates, logits = self._draft(input_ids, budget)
            self._last_candidates = candidates.shape[1] - input_ids.shape[1]
            return candidates, logits
        finally:
            self._mark = time.perf_counter()
            self._own_seconds += self._mark - start

    def update_candidate_strategy(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, num_matches: int):
        synchronize(input_ids.device)  # the target's forward is done on the device too (once per round)
        now = time.perf_counter()
        if self._awaiting_prefill:
            self.stats.target_prefill_s += now - self._mark
            self._awaiting_prefill = False
            self.disarm()  # restore the target's attention implementation right after its prefill
        else:
            self.stats.verify_s += now - self._mark
            self.stats.record_round(self._last_candidates, int(num_matches))
        self.stats.new_tokens = input_ids.shape[1] - self.prompt_length
        self._own_seconds += time.perf_counter() - now

    # -- lifecycle -----------------------------------------------------------------------------------------------

    def disarm(self) -> None:
        if self.capture is not None:
            self.capture.disarm()
            self.stats.capture_s = self.capture.timer.seconds

    def close(self) -> None:
        """Restore everything we touched and release the draft cache (idempotent; called from a ``finally``)."""
        self.disarm()
        self.cache = None
        self.stats.draft_s = self._draft_timer.seconds
        self.stats.overhead_s = max(0.0, self._own_seconds - self.stats.draft_prefill_s - self.stats.draft_s)

    # -- stage 1: capture during the target's prefill --------------------------------------------------------------

    def _arm_capture(self) -> None:
        if not self.prune_config.needs_target_capture or self.video_positions.numel() == 0:
            return
        num_layers = self.target.config.get_text_config().num_hidden_layers
        similarity = self.prune_config.scorer == "similarity"
        self.capture = (HiddenStateSimilarityCapture if similarity else VerifierAttentionCapture)(
            self.target,
            query_positions=self._query_positions(),
            video_positions=self.video_positions,
            layers=self.prune_config.layer_indices(num_layers),
            prompt_length=self.prompt_length,
        )
        self.capture.arm()

    def _query_positions(self) -> torch.Tensor:
        placeholders = [self.family.video_token_id(self.target.config), self.family.image_token_id(self.target.config)]
        return query_positions(self._prompt_ids, [p for p in placeholders if p is not None])

    # -- stage 2: selection and the draft's prefill on the pruned prompt -------------------------------------------

    def _select(self) -> torch.Tensor:
        num_video = self.video_positions.numel()
        if num_video == 0:
            return self.video_positions.new_empty(0)
        cfg = self.prune_config
        scores = self.capture.scores() if self.capture is not None else None
        return select_video_tokens(
            scores,
            cfg.keep_ratio,
            cfg.stage1_mass,
            scorer=cfg.scorer,
            generator=self._random,
            stage1_max_share=cfg.stage1_max_share,
            stage1_rule=cfg.stage1_rule,
            num_tokens=num_video,
            video_sizes=self.video_sizes,
        ).to(self.video_positions.device)

    def _plan_pruned_prompt(self) -> None:
        """Select the kept video tokens and derive the draft's pruned prompt layout and positions."""
        self.kept_rows = self._select()
        keep_mask = torch.ones(self.prompt_length, dtype=torch.bool, device=self._prompt_ids.device)
        keep_mask[self.video_positions] = False
        keep_mask[self.video_positions[self.kept_rows]] = True
        self.keep_mask = keep_mask
        self.stats.kept_video_tokens = self.kept_rows.numel()
        self.positions = DraftPositions(self.prompt_positions, keep_mask, self.prune_config.positions)

    def _prefill_draft(self, input_ids: torch.LongTensor) -> torch.Tensor:
        """The draft's prefill: the pruned prompt and the tokens generated so far, in one forward.

        Returns the draft's logits for the next token.
        """
        start = time.perf_counter()
        features = self._draft_features()
        self.cache = DynamicCache(config=self.draft.config.get_text_config())
        # Sliding-window layers keep their past so that rollbacks stay possible (docs/design.md §3).
        self.cache.activate_past_recording()
        generated = input_ids[:, self.prompt_length :]
        ids = torch.cat([self._prompt_ids[None, self.keep_mask], generated], dim=-1)
        positions = torch.cat(
            [self.positions.prompt(), self.positions.generated(self.prompt_length, generated.shape[1])], dim=-1
        )
        logits = self._draft_forward(ids, positions, features)
        self.fed = generated[0].tolist()
        synchronize(logits.device)  # once per call
        self.stats.draft_prefill_s += time.perf_counter() - start
        return logits

    def _draft_features(self) -> dict[str, Any]:
        """The draft's own vision features: all image rows, the kept video rows."""
        features: dict[str, Any] = {}
        for modality, keys in (("image", self.family.image_inputs), ("video", self.family.video_inputs)):
            if self.reusable_features is not None and self.reusable_features.get(modality) is not None:
                output = self.reusable_features[modality]
            elif self.raw_inputs.get(keys[0]) is not None:
                encoder = getattr(self.draft, f"get_{modality}_features")
                accepted = inspect.signature(encoder).parameters
                encoder_kwargs = {
                    key: _to_device(self.raw_inputs[key], self.draft_device)
                    for key in keys
                    if key in accepted and self.raw_inputs.get(key) is not None
                }
                output = encoder(**encoder_kwargs, return_dict=True)
            else:
                continue
            if modality == "video":
                # CPU indices index a tensor on any device: the features live where the vision tower's merger (and,
                # for deepstack, each contributing block) is, which under a device map need not be draft.device.
                output = _slice_mm_encoder_output(output, self.kept_rows.cpu())
            features[modality] = output
        return features

    # -- stage 3: the draft loop ---------------------------------------------------------------------------------

    def _draft(self, input_ids: torch.LongTensor, budget: int) -> tuple[torch.LongTensor, torch.FloatTensor]:
        if self.cache is None:
            logits = self._prefill_draft(input_ids)
        else:
            self._rollback(input_ids)
            logits = self._draft_forward(input_ids[:, self.prompt_length + len(self.fed) :])

        sequence = input_ids
        drafted_logits = []
        for step in range(budget):
            if step:
                logits = self._draft_forward(sequence[:, -1:])
            # Processors index scores with the sequence's ids: keep both on the sequence's device (device maps).
            scores = self.logits_processor(sequence, self._to_target_vocab(logits).to(sequence.device))
            if self.do_sample:
                token = torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1)
            else:
                token = scores.argmax(dim=-1, keepdim=True)
            extended = torch.cat([sequence, token.to(sequence.device)], dim=-1)
            stops = self._would_stop(extended)
            if stops and not self.do_sample:
                # Greedy: leave that token to the target's bonus position (exact: the target's argmax there is the
                # same token when the draft is right). The stock loop, which runs greedy calls, commits every accepted
                # draft and checks stopping criteria only after the block: a drafted stop token would overshoot.
                break
            drafted_logits.append(scores)
            sequence = extended
            if stops:
                # Sampling: the stop token ends the block as its last candidate, with the distribution it was drawn
                # from. Dropping it would draft every kept token from that distribution conditioned on "no stop" while
                # verification assumes the unconditioned one (stop tokens under-weighted). The owned loop, which runs
                # sampled calls, commits nothing past it (decoding.py, "Stops inside a block").
                break
        if not drafted_logits:
            return input_ids, None
        # The candidate logits are exactly the processed distributions the tokens were drawn from (exact sampling).
        return sequence, torch.stack(drafted_logits, dim=1)

    def _would_stop(self, sequence: torch.LongTensor) -> bool:
        if not self.stopping_criteria:
            return False
        return bool(self.stopping_criteria(sequence, None).any())

    def _rollback(self, input_ids: torch.LongTensor) -> None:
        """Crop the draft cache to the longest prefix of what it has seen that the target accepted.

        Only the tokens fed since the last round can disagree (everything before was already verified).
        """
        start = self._verified
        accepted = input_ids[0, self.prompt_length + start : self.prompt_length + len(self.fed)].tolist()
        common = start
        for seen, kept in zip(self.fed[start:], accepted):
            if seen != kept:
                break
            common += 1
        stale = len(self.fed) - common
        if stale:
            self.cache.crop(-stale)
            del self.fed[common:]
        self._verified = len(self.fed)

    def _draft_forward(self, ids: torch.LongTensor, positions: torch.Tensor | None = None, features=None):
        """One draft forward on `ids` (target vocabulary) appended to its cache; returns the last logits."""
        if positions is None:
            positions = self.positions.generated(self.prompt_length + len(self.fed), ids.shape[1])
            self.fed.extend(ids[0].tolist())
        inputs = {
            "input_ids": self._to_draft_vocab(ids).to(self.draft_device),
            "position_ids": positions.to(self.draft_device),
            CACHE_KEY: self.cache,
            "use_cache": True,
            "logits_to_keep": 1,
        }
        if features:
            inputs["mm_encoder_outputs"] = features
        # Decode steps count in draft_s (timed without a host sync per token); the prefill has its own timer.
        with self._draft_timer.section(self.draft_device) if features is None else contextlib.nullcontext():
            return self.draft(**inputs, return_dict=True).logits[:, -1, :]

    def _to_draft_vocab(self, ids: torch.LongTensor) -> torch.LongTensor:
        # A target token the draft cannot embed (only possible in the target's padding rows) is shown as id 0;
        # the target verifies every token, so this can only cost acceptance, never correctness.
        if self.draft_vocab >= self.target_vocab:
            return ids
        return torch.where(ids < self.draft_vocab, ids, torch.zeros_like(ids))

    def _to_target_vocab(self, logits: torch.Tensor) -> torch.Tensor:
        """Pad (with -inf) or truncate the draft's logits to the target vocabulary, in float32."""
        logits = logits.float()
        if self.draft_vocab > self.target_vocab:
            return logits[:, : self.target_vocab]
        if self.draft_vocab < self.target_vocab:
            if self._vocab_pad is None:  # built once per call, not per drafted token
                self._vocab_pad = logits.new_full((logits.shape[0], self.target_vocab - self.draft_vocab), float("-inf"))
            return torch.cat([logits, self._vocab_pad], dim=-1)
        return logits


def _to_device(value: Any, device: torch.device) -> Any:
    return value.to(device) if isinstance(value, torch.Tensor) else value

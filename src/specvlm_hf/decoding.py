"""Our own assisted-decoding loop, for verification rules the stock loop cannot express (LVSpec's loose rule).

It runs in place of ``GenerationMixin._assisted_decoding`` when ``PruneConfig(verify="loose")``; strict calls keep the
stock loop. generate() has already prepared everything (logits processors, stopping criteria, the cache, the
target's position ids and multimodal features), so the loop only has to:

1. ask the candidate generator for drafted tokens (the first round returns none, so the target prefills alone);
2. run the target once on them, preparing its inputs with transformers' own helpers, exactly as the stock loop does
   (so that, with the strict rule, the output is token-identical to stock);
3. apply the logits processors to every position and let the verification object decide how many drafted tokens
   to accept (plus the target's bonus token);
4. commit, stream, crop the target cache, update the candidate generator and the model kwargs, record the optional
   outputs (scores, raw logits, attentions, hidden states, one entry per generated token as in every HF loop) and
   check the stopping criteria.

Greedy only: the loose rule is not defined for sampling (`integration` rejects ``do_sample=True`` before decoding).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from transformers.generation.candidate_generator import (
    _prepare_attention_mask,
    _prepare_position_ids,
    _prepare_token_type_ids,
)
from transformers.generation.utils import (
    ALL_CACHE_NAMES,
    GenerateDecoderOnlyOutput,
    _split_model_outputs,
)

from .compat import CACHE_KEY, output_cache
from .stats import SpecStats
from .verification import RELAXED, SHIFTED, StrictVerification


class _OutputRecorder:
    """The optional per-token outputs of ``return_dict_in_generate`` (same layout as the stock loops)."""

    def __init__(self, generation_config: Any) -> None:
        wanted = bool(generation_config.return_dict_in_generate)
        self.return_dict = wanted
        self.scores = () if wanted and generation_config.output_scores else None
        self.logits = () if wanted and generation_config.output_logits else None
        self.attentions = () if wanted and generation_config.output_attentions else None
        self.hidden_states = () if wanted and generation_config.output_hidden_states else None

    def add(self, outputs: Any, processed: torch.Tensor, raw: torch.Tensor, cur_len: int, added: int, first: bool
            ) -> None:
        if self.scores is not None:
            self.scores += tuple(processed[:, i] for i in range(added))
        if self.logits is not None:
            self.logits += tuple(raw[:, i] for i in range(added))
        # The first entry of attentions/hidden states covers the prompt plus the first token (HF convention).
        length = cur_len + added if first else added
        if self.attentions is not None and outputs.attentions and outputs.attentions[0] is not None:
            self.attentions = _split_model_outputs(self.attentions, outputs.attentions, cur_len, length,
                                                   is_decoder_attention=True)
        if self.hidden_states is not None:
            self.hidden_states = _split_model_outputs(self.hidden_states, outputs.hidden_states, cur_len, length)

    def result(self, sequences: torch.LongTensor, model_kwargs: dict[str, Any]) -> Any:
        if not self.return_dict:
            return sequences
        cache = next((model_kwargs[key] for key in ALL_CACHE_NAMES if key in model_kwargs), None)
        return GenerateDecoderOnlyOutput(
            sequences=sequences,
            scores=self.scores,
            logits=self.logits,
            attentions=self.attentions,
            hidden_states=self.hidden_states,
            **{CACHE_KEY: cache},
        )


def assisted_decoding(
    target: torch.nn.Module,
    input_ids: torch.LongTensor,
    logits_processor: Any,
    stopping_criteria: Any,
    generation_config: Any,
    *,
    verification: Any = None,
    stats: SpecStats | None = None,
    synced_gpus: bool = False,
    streamer: Any = None,
    inputs_tensor: torch.Tensor | None = None,
    assistant_model: torch.nn.Module | None = None,
    assistant_tokenizer: Any = None,
    tokenizer: Any = None,
    **model_kwargs: Any,
) -> Any:
    """Speculative decoding with `verification` (default: strict exact match) as the acceptance rule.

    Same signature and return value as ``GenerationMixin._assisted_decoding`` (generate() calls it in its place);
    `stats` receives the loose rule's counters.
    """
    if synced_gpus:
        raise ValueError("verify='loose' runs on one process: synced_gpus (DeepSpeed ZeRO-3 / FSDP) is not supported.")
    if generation_config.do_sample:
        # integration rejects it before decoding; this guards direct callers (the loop implements greedy only).
        raise ValueError("the owned assisted-decoding loop is greedy: do_sample=True is not supported.")
    if not model_kwargs.get("use_cache"):
        raise ValueError("speculative decoding requires `use_cache=True`.")
    verification = verification if verification is not None else StrictVerification()
    cache = model_kwargs.get(CACHE_KEY)
    if cache is None:
        raise RuntimeError("assisted decoding requires a cache prepared by generate().")
    cache.activate_past_recording()
    generator = target._get_candidate_generator(
        generation_config=generation_config,
        input_ids=input_ids,
        inputs_tensor=inputs_tensor,
        assistant_model=assistant_model,
        logits_processor=logits_processor,
        target_tokenizer=tokenizer,
        assistant_tokenizer=assistant_tokenizer,
        model_kwargs=model_kwargs,
    )
    eos = getattr(generation_config, "_eos_token_tensor", None)
    recorder = _OutputRecorder(generation_config)
    outputs = None
    first = True
    accepted = 0
    while True:
        cur_len = input_ids.shape[1]
        candidates, _ = generator.get_candidates(
            input_ids, model_kwargs=model_kwargs, model_outputs=outputs, is_first_iteration=first,
            n_last_matches=accepted,
        )
        candidates = candidates.to(input_ids.device)
        drafted = candidates.shape[1] - cur_len

        outputs = target(**_target_inputs(target, candidates, drafted, first, model_kwargs, generator, verification))
        raw = outputs.logits[:, -drafted - 1 :].to(dtype=torch.float32, device=input_ids.device)
        processed = raw.clone()
        for i in range(drafted + 1):
            processed[:, i] = logits_processor(candidates[:, : cur_len + i], processed[:, i])

        hidden = outputs.hidden_states[-1] if verification.needs_hidden_states else None
        if first:
            verification.observe_prefill(hidden)
        verdict = verification.verify(candidates[0, cur_len:], processed[0], hidden)
        bonus = torch.tensor([[verdict.bonus]], dtype=candidates.dtype, device=candidates.device)
        new_tokens = torch.cat([candidates[:, cur_len : cur_len + verdict.accepted], bonus], dim=-1)
        new_tokens = _crop_at_stop(new_tokens, generation_config.max_length - cur_len, eos)
        accepted = new_tokens.shape[1] - 1
        if stats is not None:
            kinds = verdict.kinds[:accepted]
            stats.relaxed_accepted += kinds.count(RELAXED)
            stats.shift_accepted += kinds.count(SHIFTED)

        input_ids = torch.cat([input_ids, new_tokens], dim=-1)
        if streamer is not None:
            streamer.put(new_tokens.cpu())
        output_cache(outputs).crop(-(drafted - accepted))
        generator.update_candidate_strategy(input_ids, processed, accepted)
        model_kwargs = target._update_model_kwargs_for_generation(
            outputs, model_kwargs, is_encoder_decoder=target.config.is_encoder_decoder, num_new_tokens=accepted + 1
        )
        recorder.add(outputs, processed, raw, cur_len, accepted + 1, first)
        first = False
        if bool(stopping_criteria(input_ids, recorder.scores).all()):
            break
    if streamer is not None:
        streamer.end()
    return recorder.result(input_ids, model_kwargs)


def _target_inputs(target, candidates: torch.LongTensor, drafted: int, first: bool, model_kwargs: dict[str, Any],
                   generator: Any, verification: Any) -> dict[str, Any]:
    """The target's forward inputs for the candidate sequence, prepared by transformers' own helpers."""
    kwargs = copy.copy(model_kwargs)
    kwargs = _prepare_attention_mask(kwargs, candidates.shape[1], target.config.is_encoder_decoder)
    kwargs = _prepare_token_type_ids(kwargs, candidates.shape[1])
    if (position_ids := kwargs.get("position_ids")) is not None and drafted > 0:
        kwargs = _prepare_position_ids(kwargs, drafted + position_ids.shape[-1], target.config.is_encoder_decoder)
    inputs = target.prepare_inputs_for_generation(
        candidates, next_sequence_length=None if first else drafted + 1, is_first_iteration=first, **kwargs
    )
    if "logits_to_keep" in inputs:
        inputs["logits_to_keep"] = drafted + 1
    if getattr(generator, "requires_model_outputs", False):
        inputs |= generator.model_kwargs_overrides
    if verification.needs_hidden_states and not inputs.get("output_hidden_states"):
        inputs["output_hidden_states"] = -1  # the last layer only (as transformers' MTP generator asks for it)
    return inputs


def _crop_at_stop(tokens: torch.LongTensor, budget: int, eos: torch.Tensor | None) -> torch.LongTensor:
    """Never commit past max_length or past an eos token.

    Our draft never proposes a token that would stop generation (the target's bonus takes that position), so this only
    guards against candidate generators that do.
    """
    tokens = tokens[:, :budget]
    if eos is not None:
        hits = torch.isin(tokens[0], eos.to(tokens.device)).nonzero()
        if hits.numel():
            tokens = tokens[:, : int(hits[0]) + 1]
    return tokens

"""Our own assisted-decoding loop, for the acceptance rules the stock loop cannot express exactly.

It runs in place of ``GenerationMixin._assisted_decoding`` for ``PruneConfig(verify="loose")`` (LVSpec's rule) and
for sampled calls (``do_sample=True``: speculative sampling, `verification.speculative_sampling_block`); greedy
strict calls keep the stock loop. generate() has already prepared everything (logits processors, stopping criteria,
the cache, the target's position ids and multimodal features). One round, top to bottom:

1. ask the candidate generator for drafted tokens and the processed scores they were drawn from (the first round
   returns none, so the target prefills alone);
2. run the target once on them, preparing its inputs with transformers' own helpers, exactly as the stock loop does
   (so that, with the strict rule, the output is token-identical to stock);
3. apply the logits processors to every position and let the verification object (a pure rule) decide how many
   drafted tokens to accept and the target's bonus token;
4. commit the accepted tokens and the bonus, but nothing past a token at which generation stops (below);
5. stream, crop the target cache, update the candidate generator and the model kwargs, record the optional outputs
   (scores, raw logits, attentions, hidden states, one entry per generated token as in every HF loop) and check the
   stopping criteria.

**Stops inside a block.** Generating token by token checks the stopping criteria after every token, so a block must
stop where they first fire. Under sampling the draft keeps a drawn stop token as the block's last candidate (dropping
it would draft every kept token from the draft's distribution conditioned on "no stop" while verification assumes
the unconditioned one, under-weighting stop tokens); when verification accepts it, it is committed and the bonus is
not. Step 4 therefore checks the criteria after every accepted drafted token (the calls generation token by token
makes too) and cuts the block after the first one that fires. The stock loop cannot do this: it crops at eos only,
and commits the bonus past a drafted token that meets any other criterion (a user criterion, a stop string) — in
transformers 5.23 and 5.24 alike. Greedy strict calls never need it: there the draft leaves a stop token to the
target's bonus (exact, since the target's argmax at that position is the same token when the draft is right).
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
from .verification import RELAXED, SHIFTED, BlockVerdict, SpeculativeSampling, StrictVerification


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
    """Speculative decoding with `verification` as the acceptance rule (default: exact match when greedy, speculative
    sampling when ``do_sample=True``).

    Same signature and return value as ``GenerationMixin._assisted_decoding`` (generate() calls it in its place);
    `stats` receives the loose rule's counters.
    """
    if synced_gpus:
        raise ValueError("the owned assisted-decoding loop runs on one process: synced_gpus (DeepSpeed ZeRO-3 / FSDP) "
                         "is not supported.")
    if not model_kwargs.get("use_cache"):
        raise ValueError("speculative decoding requires `use_cache=True`.")
    sampling = bool(generation_config.do_sample)
    if verification is None:
        verification = SpeculativeSampling(generation_config.assistant_ensemble_weight) if sampling \
            else StrictVerification()
    if verification.samples != sampling:
        # integration picks the rule from do_sample; this guards direct callers.
        raise ValueError(f"{type(verification).__name__} is a {'sampling' if verification.samples else 'greedy'} rule "
                         f"but the call has do_sample={sampling}.")
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
    recorder = _OutputRecorder(generation_config)
    outputs = None
    first = True
    accepted = 0
    while True:
        cur_len = input_ids.shape[1]
        candidates, draft_scores = generator.get_candidates(
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
        # A sampling rule also reads the distributions the drafted tokens were drawn from (greedy rules never do).
        rule_inputs = {"draft_scores": draft_scores[0]} if verification.samples and draft_scores is not None else {}
        verdict = verification.verify(candidates[0, cur_len:], processed[0], hidden, **rule_inputs)
        new_tokens, accepted, stopped = _tokens_to_commit(candidates, cur_len, verdict, processed, stopping_criteria,
                                                          recorder.scores, generation_config.max_length)
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
            outputs, model_kwargs, is_encoder_decoder=target.config.is_encoder_decoder,
            num_new_tokens=new_tokens.shape[1],
        )
        recorder.add(outputs, processed, raw, cur_len, new_tokens.shape[1], first)
        first = False
        if stopped or bool(stopping_criteria(input_ids, recorder.scores).all()):
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


def _tokens_to_commit(candidates: torch.LongTensor, cur_len: int, verdict: BlockVerdict, processed: torch.Tensor,
                      stopping_criteria: Any, scores: tuple | None, max_length: int
                      ) -> tuple[torch.LongTensor, int, bool]:
    """The tokens one round commits, how many of them are accepted drafted tokens, and whether generation stopped at
    the last of them.

    The accepted drafted tokens then the bonus token, but nothing past max_length, nor past an accepted drafted token
    at which the stopping criteria fire (module docstring, "Stops inside a block"); the bonus itself is checked by the
    loop, as every generated token. `scores` are the processed scores recorded so far (None unless the call records
    them): each check sees the scores generation token by token would pass.
    """
    accepted = min(verdict.accepted, max_length - cur_len)
    for i in range(1, accepted + 1):
        seen = None if scores is None else scores + tuple(processed[:, j] for j in range(i))
        if bool(stopping_criteria(candidates[:, : cur_len + i], seen).all()):
            return candidates[:, cur_len : cur_len + i], i, True
    tokens = candidates[:, cur_len : cur_len + accepted]
    if cur_len + accepted < max_length:
        bonus = torch.tensor([[verdict.bonus]], dtype=candidates.dtype, device=candidates.device)
        tokens = torch.cat([tokens, bonus], dim=-1)
    return tokens, accepted, False

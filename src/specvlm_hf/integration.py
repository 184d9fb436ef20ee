"""The ``generate`` wrapper, and how ``generate`` reaches our candidate generator.

Importing specvlm_hf calls `register()`, which patches three methods of ``GenerationMixin``:

* ``generate`` — pops ``video_pruning``; without it the call goes straight to the stock method (a strict
  no-op). With it, the call is validated *before any decoding* (clear errors naming the argument and the fix),
  the raw multimodal inputs are snapshotted (stock generate pops them and shows the draft nothing), and the
  stock method runs inside a ``try/finally`` that restores every piece of state we touched.
* ``_get_candidate_generator`` — returns our `PrunedVideoCandidateGenerator` for the active call's target.
* ``_validate_generation_mode`` — skips the stock tokenizer check for the active call (our compatibility check
  replaces it: stock rejects pairs whose vocabularies differ only by padding, e.g. Qwen2.5-VL 7B vs 3B).
* ``_assisted_decoding`` — records the prepared stopping criteria for the active call: the draft ends its block
  where they would stop generation, so that the loop never commits tokens past a stop (the stock loop crops only at
  eos and max_length) and the output length equals the target's alone. Greedy strict calls then run the stock loop;
  sampled calls (speculative sampling) and ``verify="loose"`` calls (LVSpec's rule) run our own loop
  (`decoding.assisted_decoding`), which alone can commit a sampled stop token without a bonus after it (exact
  sampling with stop tokens: `decoding`'s docstring).

The active call lives in a ``ContextVar``: concurrent calls in other threads never see it.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import (
    GenerationConfig,
    QuantizedCache,
    StaticCache,
    SynthIDTextWatermarkingConfig,
    SynthIDTextWatermarkLogitsProcessor,
)
from transformers.distributed.fsdp import is_fsdp_managed_module
from transformers.distributed.utils import _get_torch_distributed_world_size
from transformers.generation.utils import GenerationMixin
from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled

from . import decoding
from .candidate import PrunedVideoCandidateGenerator
from .capture import check_capture_supported
from .compat import passed_cache
from .config import PruneConfig
from .families import FamilySpec, check_draft_compatible
from .stats import SpecStats, record_last_stats
from .verification import (
    LooseRule,
    LooseVerification,
    SpeculativeSampling,
    StrictVerification,
    protected_token_ids,
    relaxed_count,
    special_tokens_source,
)

_STOCK: dict[str, Any] = {}
# Greedy strict calls run the stock loop. The tests set this to True to check that our loop's greedy rule (strict) is
# token-identical to it.
OWNED_LOOP_FOR_STRICT = False
_ACTIVE: ContextVar[_Call | None] = ContextVar("specvlm_active_call", default=None)


@dataclass
class _Call:
    """One validated ``generate(..., video_pruning=...)`` call."""

    target: torch.nn.Module
    draft: torch.nn.Module
    family: FamilySpec
    prune_config: PruneConfig
    raw_inputs: dict[str, Any]
    video_sizes: list[int]
    stats: SpecStats = field(default_factory=SpecStats)
    generator: PrunedVideoCandidateGenerator | None = None
    stopping_criteria: Any = None

    def runs_owned_loop(self, generation_config: GenerationConfig) -> bool:
        return self.prune_config.is_loose or bool(generation_config.do_sample) or OWNED_LOOP_FOR_STRICT

    def verification(self, input_ids: torch.LongTensor, generation_config: GenerationConfig, tokenizer: Any):
        """The acceptance rule of the owned loop for this call."""
        if generation_config.do_sample:  # loose calls are greedy (rejected before decoding otherwise)
            return SpeculativeSampling(generation_config.assistant_ensemble_weight)
        if not self.prune_config.is_loose:
            return StrictVerification()
        protected = protected_token_ids(self.target, generation_config, tokenizer)
        visual = torch.isin(input_ids[0], torch.tensor(self.family.visual_token_ids(self.target.config),
                                                       device=input_ids.device))
        return LooseVerification(LooseRule.from_config(self.prune_config, protected),
                                 self.prune_config.relevance_top_n, visual.nonzero().squeeze(1))

    def close(self) -> None:
        if self.generator is not None:
            self.generator.close()


# -- registration ----------------------------------------------------------------------------------------------------


def register() -> None:
    """Make ``video_pruning=`` an accepted ``generate`` kwarg on every transformers model (idempotent)."""
    if _STOCK:
        return
    for name, replacement in (
        ("generate", _generate),
        ("_get_candidate_generator", _get_candidate_generator),
        ("_validate_generation_mode", _validate_generation_mode),
        ("_assisted_decoding", _assisted_decoding),
    ):
        stock = GenerationMixin.__dict__[name]
        _STOCK[name] = stock
        setattr(GenerationMixin, name, functools.wraps(stock)(replacement))


def unregister() -> None:
    """Restore the stock ``GenerationMixin`` methods exactly (``video_pruning`` is rejected again)."""
    for name, stock in _STOCK.items():
        setattr(GenerationMixin, name, stock)
    _STOCK.clear()


def is_registered() -> bool:
    return bool(_STOCK)


# -- the patched methods ---------------------------------------------------------------------------------------------


def _requested_pruning(model, args: tuple, kwargs: dict) -> Any:
    """The call's ``video_pruning`` (popped from `kwargs`), resolved as generate() merges generation configs.

    The kwarg wins; else a passed GenerationConfig's value; else — only for calls with an assistant, like
    ``num_assistant_tokens`` — the model's own ``generation_config.video_pruning`` (e.g. saved in
    generation_config.json and reloaded, then in its to_dict() form). generate() fills every field a passed config
    leaves unset from the model's config, and so do we. A config marked ``is_assistant`` is the one stock assisted
    generation hands to an assistant's nested ``generate``: whatever it carries belongs to the target's call, never to
    the assistant's.
    """
    value = kwargs.pop("video_pruning", None)
    if value is not None:
        return value
    named = dict(zip(_GENERATE_PARAMETERS, args)) | kwargs
    generation_config = named.get("generation_config")
    if getattr(generation_config, "is_assistant", False):
        return None
    value = getattr(generation_config, "video_pruning", None)
    if value is None and named.get("assistant_model") is not None:
        value = getattr(model.generation_config, "video_pruning", None)
    return value


def _generate(self, *args, **kwargs):
    value = _requested_pruning(self, args, kwargs)
    if value is None:
        return _STOCK["generate"](self, *args, **kwargs)
    prune_config = PruneConfig.coerce(value)
    call = _prepare_call(self, prune_config, args, kwargs)
    token = _ACTIVE.set(call)
    try:
        result = _STOCK["generate"](self, *args, **kwargs)
    finally:
        _ACTIVE.reset(token)
        call.close()
    record_last_stats(self, call.stats)
    return result


def _get_candidate_generator(self, generation_config, input_ids, inputs_tensor, logits_processor, model_kwargs,
                             assistant_model=None, target_tokenizer=None, assistant_tokenizer=None):
    call = _ACTIVE.get()
    if call is None or call.target is not self or call.generator is not None:
        return _STOCK["_get_candidate_generator"](
            self, generation_config=generation_config, input_ids=input_ids, inputs_tensor=inputs_tensor,
            logits_processor=logits_processor, model_kwargs=model_kwargs, assistant_model=assistant_model,
            target_tokenizer=target_tokenizer, assistant_tokenizer=assistant_tokenizer,
        )
    call.generator = PrunedVideoCandidateGenerator(
        target=self,
        draft=call.draft,
        family=call.family,
        prune_config=call.prune_config,
        raw_inputs=call.raw_inputs,
        video_sizes=call.video_sizes,
        input_ids=input_ids,
        generation_config=generation_config,
        logits_processor=logits_processor,
        model_kwargs=model_kwargs,
        stopping_criteria=call.stopping_criteria,
        stats=call.stats,
    )
    return call.generator


def _assisted_decoding(self, input_ids, logits_processor, stopping_criteria, generation_config, *args, **kwargs):
    call = _ACTIVE.get()
    if call is not None and call.target is self:
        call.stopping_criteria = stopping_criteria
        if call.runs_owned_loop(generation_config):
            verification = call.verification(input_ids, generation_config, kwargs.get("tokenizer"))
            return decoding.assisted_decoding(self, input_ids, logits_processor, stopping_criteria, generation_config,
                                              *args, verification=verification, stats=call.stats, **kwargs)
    return _STOCK["_assisted_decoding"](self, input_ids, logits_processor, stopping_criteria, generation_config,
                                        *args, **kwargs)


def _validate_generation_mode(self, generation_mode, generation_config, generation_mode_kwargs):
    call = _ACTIVE.get()
    if call is not None and call.target is self:
        # Our compatibility check (families.check_draft_compatible) replaces the stock assistant checks.
        generation_mode_kwargs = {k: v for k, v in generation_mode_kwargs.items() if k != "assistant_model"}
    return _STOCK["_validate_generation_mode"](self, generation_mode, generation_config, generation_mode_kwargs)


# -- validation, all before any decoding -----------------------------------------------------------------------------

_GENERATE_PARAMETERS = list(inspect.signature(GenerationMixin.generate).parameters)[1:]  # without `self`


def _prepare_call(target, prune_config: PruneConfig, args: tuple, kwargs: dict) -> _Call:
    named = dict(zip(_GENERATE_PARAMETERS, args))
    named.update(kwargs)

    draft = named.get("assistant_model")
    if draft is None:
        raise ValueError(
            "`video_pruning` prunes the video for the draft model, so it needs `assistant_model=`: pass a smaller "
            "model of the target's family (or the target itself for self-speculation)."
        )
    if not isinstance(draft, torch.nn.Module) or not hasattr(draft, "config"):
        raise TypeError(f"`assistant_model` must be a transformers model, got {type(draft).__name__}.")
    family = check_draft_compatible(target, draft)

    _reject_unsupported_options(target, prune_config, named)
    if prune_config.is_loose:
        _reject_loose_options(target, prune_config, named)
    if prune_config.is_loose or _effective_option(target, named, "do_sample"):
        _reject_owned_loop_options(target, prune_config, named)
    _reject_assistant_schedule(draft, prune_config)

    input_ids = named.get("input_ids", named.get("inputs"))
    if not isinstance(input_ids, torch.Tensor) or input_ids.ndim != 2 or input_ids.dtype not in (torch.long, torch.int):
        raise ValueError(
            "`video_pruning` needs `input_ids` (the processor's output, with the video placeholders) to know which "
            "tokens are video tokens; `inputs_embeds`-only calls are not supported."
        )
    if input_ids.shape[0] != 1:
        raise ValueError(
            f"`video_pruning` supports batch size 1 (as does assisted generation), got input_ids with batch size "
            f"{input_ids.shape[0]}. Call generate once per prompt."
        )

    raw_inputs = {key: named[key] for key in family.raw_inputs if named.get(key) is not None}
    video_sizes = _check_video_placeholders(target, family, input_ids, raw_inputs)
    if not video_sizes:
        # A notice, not an error: the call is still correct (plain speculative decoding), and stats.video_tokens is 0.
        warnings.warn(
            "`video_pruning` found no video placeholders in input_ids, so there is nothing to prune: the draft sees "
            "the whole prompt (images are never pruned) and the call is plain speculative decoding. Pass the "
            "processor's output for a prompt with a video, or drop video_pruning for this call.",
            UserWarning,
            stacklevel=3,
        )
    if prune_config.needs_verifier_attention and video_sizes:
        check_capture_supported(target)
    if prune_config.needs_target_capture and video_sizes:  # the similarity scorer runs with any attention kernel
        prune_config.layer_indices(target.config.get_text_config().num_hidden_layers)
    return _Call(target, draft, family, prune_config, raw_inputs, video_sizes)


def _effective_option(target, named: dict, name: str) -> Any:
    """The value generate() will use: a kwarg, else a value set in a passed GenerationConfig, else the model's own.

    generate() fills the fields a passed GenerationConfig leaves unset (None) from ``target.generation_config``
    (``_prepare_generation_config``), so an unset field must not hide the model's value here either.
    """
    if name in named:
        return named[name]
    generation_config = named.get("generation_config")
    if isinstance(generation_config, GenerationConfig):
        value = getattr(generation_config, name, None)
        if value is not None:
            return value
    return getattr(target.generation_config, name, None)


def _explicit_option(named: dict, name: str) -> Any:
    """An option the caller set in this call (kwarg, or a non-default value in a passed GenerationConfig)."""
    if name in named:
        return named[name]
    generation_config = named.get("generation_config")
    if isinstance(generation_config, GenerationConfig):
        value = getattr(generation_config, name, None)
        if value != getattr(GenerationConfig(), name, None):
            return value
    return None


# Options that cannot work with video_pruning: (name, why). The fix is always to remove the option. Generate kwargs
# count when passed; GenerationConfig fields also from a passed GenerationConfig or the model's own generation_config
# (generate merges them), so that none is silently dropped on our path.
_UNSUPPORTED_KWARGS = (
    ("inputs_embeds", "the draft's pruned prompt is built from input_ids; pass input_ids from the processor"),
    ("mm_encoder_outputs", "the draft must run its own vision tower on the raw video; pass pixel_values_videos"),
    ("custom_generate", "video_pruning runs the stock assisted-decoding loop"),
    ("assistant_tokenizer", "the draft must share the target's tokenizer (vocabularies may differ by padding)"),
)
_UNSUPPORTED_FIELDS = (
    ("prefill_chunk_size", "the verifier's attention is captured during a single prefill forward"),
    ("prompt_lookup_num_tokens", "it selects a different candidate generator"),
    ("assistant_early_exit", "it selects a different candidate generator"),
    ("use_mtp", "it selects a different candidate generator (the model's multi-token-prediction heads)"),
    ("speculation_type", "it selects a different candidate generator"),
    ("dola_layers", "DoLa decoding contrasts early layers' logits with the final layer's in a loop of its own, while "
                    "speculative decoding verifies with the final layer's logits (stock assisted generation ignores "
                    "dola_layers with a warning; plain generate loads DoLa from the Hub)"),
    ("token_healing", "it re-tokenizes the prompt without its special tokens, which removes the video placeholders"),
)
# Caches that can be rolled back after rejected drafts (crop): the dynamic ones. Static caches cannot crop; quantized
# layers crop only their unquantized residual (stock assisted generation fails mid-decoding with an IndexError).
_CROPPABLE_CACHE_IMPLEMENTATIONS = (None, "dynamic", "offloaded")


def _uses_synthid_watermark(target, named: dict) -> bool:
    watermark = _effective_option(target, named, "watermarking_config")
    processors = named.get("logits_processor") or ()
    return isinstance(watermark, SynthIDTextWatermarkingConfig) or any(
        isinstance(processor, SynthIDTextWatermarkLogitsProcessor) for processor in processors)


def _reject_unsupported_options(target, prune_config: PruneConfig, named: dict) -> None:
    unsupported = [(name, why) for name, why in _UNSUPPORTED_KWARGS if named.get(name) is not None]
    unsupported += [(name, why) for name, why in _UNSUPPORTED_FIELDS
                    if _effective_option(target, named, name) not in (None, False)]
    for name, why in unsupported:
        raise ValueError(f"`{name}` cannot be combined with `video_pruning`: {why}. Remove `{name}`.")

    if _uses_synthid_watermark(target, named):
        raise ValueError(
            "SynthID watermarking cannot be combined with `video_pruning`: its logits processor keeps state across "
            "calls (the context it has seen), and speculative decoding calls it on drafted positions that generation "
            "token by token never shows it, so the output would differ from the target's. Remove the SynthID "
            "`watermarking_config` (or processor); the green-list WatermarkingConfig is supported."
        )
    if _effective_option(target, named, "guidance_scale") not in (None, 1, 1.0):
        raise ValueError(
            "`guidance_scale` (classifier-free guidance) cannot be combined with `video_pruning`: its logits "
            "processor runs the model on an unconditional context once per step, which drafted positions would "
            "corrupt. Remove `guidance_scale`."
        )
    if _effective_option(target, named, "output_attentions") and \
            target.get_decoder().config._attn_implementation != "eager":
        raise ValueError(
            "`output_attentions=True` needs a target whose language model runs attn_implementation='eager' (other "
            "kernels return no attention weights, which the assisted-decoding loop cannot split). Load the target "
            "with attn_implementation='eager' or remove `output_attentions`."
        )
    if _effective_option(target, named, "use_cache") is False:
        raise ValueError(
            "`video_pruning` (speculative decoding) needs use_cache=True: rejected drafts are rolled back in the "
            "target's cache. Remove use_cache=False."
        )
    if (num_beams := _effective_option(target, named, "num_beams")) not in (None, 1):
        raise ValueError(f"`video_pruning` supports num_beams=1 (speculative decoding), got num_beams={num_beams}.")
    cache_name, cache = passed_cache(named)
    implementation = _effective_option(target, named, "cache_implementation")
    if implementation not in _CROPPABLE_CACHE_IMPLEMENTATIONS or isinstance(cache, (StaticCache, QuantizedCache)):
        what = f"cache_implementation={implementation!r}" if implementation not in _CROPPABLE_CACHE_IMPLEMENTATIONS \
            else f"a {type(cache).__name__}"
        raise ValueError(
            f"`video_pruning` needs a dynamic cache (rejected drafts are rolled back, which {what} cannot do): remove "
            f"`cache_implementation`/the cache object (`{cache_name}`) from the call, or use cache_implementation='dynamic'."
        )
    if cache is not None and cache.get_seq_length() > 0:
        raise ValueError(
            f"`{cache_name}` already holds tokens: `video_pruning` captures the verifier's attention during a "
            "full prefill, so pass an empty cache (or none)."
        )

    gamma = _explicit_option(named, "num_assistant_tokens")
    if gamma is not None and gamma != prune_config.num_draft_tokens:
        raise ValueError(
            f"`num_assistant_tokens={gamma}` conflicts with PruneConfig.num_draft_tokens="
            f"{prune_config.num_draft_tokens}: set the number of drafted tokens per round in PruneConfig only."
        )
    schedule = _explicit_option(named, "num_assistant_tokens_schedule")
    if schedule not in (None, "constant"):
        raise ValueError(
            f"`num_assistant_tokens_schedule={schedule!r}` is not supported with `video_pruning`: the draft proposes "
            "a constant PruneConfig.num_draft_tokens per round. Remove it or pass 'constant'."
        )
    if _explicit_option(named, "assistant_confidence_threshold") is not None:
        raise ValueError(
            "`assistant_confidence_threshold` is not supported with `video_pruning` (the draft always proposes "
            "PruneConfig.num_draft_tokens tokens). Remove it."
        )


def _reject_loose_options(target, prune_config: PruneConfig, named: dict) -> None:
    if named.get("tokenizer") is None:
        raise ValueError(
            "PruneConfig(verify='loose') needs `tokenizer=` (e.g. tokenizer=processor.tokenizer): the loose rule must "
            "never relax the tokenizer's special and control tokens (<|im_start|>, ...), and only the tokenizer "
            "knows them. Pass tokenizer= to generate."
        )
    if special_tokens_source(named["tokenizer"]) is None:
        raise ValueError(
            f"PruneConfig(verify='loose') reads the special tokens of `tokenizer=`, but a "
            f"{type(named['tokenizer']).__name__} has no `all_special_ids` (nor a `.tokenizer` that has). Pass the "
            "tokenizer (or the processor holding it): tokenizer=processor.tokenizer."
        )
    if _effective_option(target, named, "do_sample"):
        raise ValueError(
            "PruneConfig(verify='loose') is defined for greedy decoding only (how to relax a sampled token is not). "
            "Pass do_sample=False (the model's generation_config may enable sampling by default) or use "
            "verify='strict', which supports sampling."
        )
    if _effective_option(target, named, "assistant_ensemble_weight") is not None:
        raise ValueError(
            "`assistant_ensemble_weight` cannot be combined with PruneConfig(verify='loose'): the loose rule decides "
            "acceptance itself. Remove `assistant_ensemble_weight`."
        )
    gamma = prune_config.num_draft_tokens
    if relaxed_count(prune_config.relax_ratio, gamma) == 0 and (prune_config.shift_window == 0 or gamma == 1):
        warnings.warn(
            f"PruneConfig(verify='loose') with num_draft_tokens={gamma}, relax_ratio={prune_config.relax_ratio:g} and "
            f"shift_window={prune_config.shift_window} can never accept a mismatch (floor(relax_ratio x "
            f"num_draft_tokens) = 0 tokens are relaxed per round, and a shift needs at least two drafted tokens): "
            "the output equals verify='strict', which runs faster on the stock loop. Raise relax_ratio or "
            "num_draft_tokens.",
            UserWarning,
            stacklevel=4,
        )


def _reject_owned_loop_options(target, prune_config: PruneConfig, named: dict) -> None:
    """Options the owned loop (loose and sampled calls) does not support."""
    synced_gpus = named.get("synced_gpus")
    if synced_gpus is None:  # generate()'s own default (ZeRO-3 / FSDP across several processes)
        synced_gpus = (is_deepspeed_zero3_enabled() or is_fsdp_managed_module(target)) \
            and _get_torch_distributed_world_size() > 1
    if synced_gpus:
        mode = "PruneConfig(verify='loose')" if prune_config.is_loose else "Sampling with video_pruning (do_sample=True)"
        fix = "Use verify='strict'" if prune_config.is_loose else "Use greedy decoding"
        raise ValueError(
            f"{mode} runs our own decoding loop, on one process: synced_gpus (DeepSpeed ZeRO-3 / FSDP across several "
            f"processes) is not supported. {fix} or run the models unsharded."
        )


def _reject_assistant_schedule(draft, prune_config: PruneConfig) -> None:
    """The assistant's own generation_config may set gamma the stock way; it must agree with PruneConfig."""
    stock_defaults = GenerationConfig._get_default_generation_params()
    assistant = draft.generation_config
    gamma = assistant.num_assistant_tokens
    if gamma not in (None, stock_defaults["num_assistant_tokens"], prune_config.num_draft_tokens):
        raise ValueError(
            f"The assistant's generation_config.num_assistant_tokens={gamma} conflicts with "
            f"PruneConfig.num_draft_tokens={prune_config.num_draft_tokens}: with video_pruning the draft length is "
            f"PruneConfig.num_draft_tokens. Set PruneConfig(num_draft_tokens={gamma}) or reset the assistant's value."
        )
    schedule = assistant.num_assistant_tokens_schedule
    if schedule not in (None, "constant"):
        raise ValueError(
            f"The assistant's generation_config.num_assistant_tokens_schedule={schedule!r} is not supported with "
            "video_pruning (the draft proposes a constant PruneConfig.num_draft_tokens per round). Set it to "
            "'constant'."
        )


def _check_video_placeholders(target, family: FamilySpec, input_ids: torch.Tensor, raw_inputs: dict) -> list[int]:
    """Placeholders per video; raise if the prompt's placeholders and the raw video inputs disagree."""
    placeholders = int((input_ids == family.video_token_id(target.config)).sum())
    has_video = raw_inputs.get(family.video_inputs[0]) is not None
    if placeholders and not has_video:
        raise ValueError(
            f"input_ids hold {placeholders} video placeholders but `{family.video_inputs[0]}` is missing: pass "
            "the processor's full output to generate (e.g. generate(**inputs, ...))."
        )
    if not placeholders:
        return []
    sizes = family.video_token_counts(target.config, raw_inputs)
    if sum(sizes) != placeholders:
        raise ValueError(
            f"input_ids hold {placeholders} video placeholders but the video inputs describe {sum(sizes)} video "
            f"tokens ({sizes} per video): the prompt and the video tensors come from different processor calls."
        )
    return sizes

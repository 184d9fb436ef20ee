"""Verifier attention capture: the target's attention from the query tokens to the video tokens.

During the target's own prefill (one forward), every captured decoder layer also computes — as a side
computation beside the untouched attention kernel — the softmax rows of the *query tokens* only, over all
keys: O(n_query x L) work per layer, never an L x L matrix, no eager attention, no ``output_attentions``, in chunks
of query rows whose float32 logits stay within `CAPTURE_CHUNK_FLOATS` (`video_attention_rows`). The rows
are averaged over heads, then query rows, then layers, and the result is renormalised over the video tokens
(attention sinks on text tokens must not shrink the video mass).

Mechanism (docs/design.md §3): a uniquely named attention function wrapping the model's own base
implementation is registered in ``AttentionInterface`` *and* ``AttentionMaskInterface`` (else masks silently
become None), the language model's config is switched to it for the prefill only, and both are restored and
unregistered right after — also when the forward raises.
"""

from __future__ import annotations

import itertools
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

import torch
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, AttentionInterface

from .stats import DeviceTimer

# Base implementations we can wrap. Flash / flex / paged kernels take other mask formats and call paths that we
# cannot test without a GPU, so they get a clear error instead (README "Limits").
SUPPORTED_ATTENTION = ("sdpa", "eager")
_NAME_COUNTER = itertools.count()
_REGISTRY_LOCK = threading.Lock()
_CAPTURE_SUFFIX = "_specvlm_capture_"
# One armed capture at a time: two calls sharing a target must not save each other's temporary implementation name
# as the one to restore. Held from arm() to disarm(), i.e. across one target prefill.
_ARMED = threading.RLock()


def base_attention_implementation(config) -> str | None:
    """The implementation a config runs outside a capture (strips our temporary capture name)."""
    implementation = config._attn_implementation
    if implementation is not None and _CAPTURE_SUFFIX in implementation:
        return implementation.split(_CAPTURE_SUFFIX)[0]
    return implementation


def language_model_config(model: torch.nn.Module):
    """The config object the decoder's attention layers read ``_attn_implementation`` from."""
    return model.get_decoder().config


def check_capture_supported(model: torch.nn.Module) -> None:
    """Raise ``ValueError`` before decoding if the target's attention cannot be captured."""
    implementation = base_attention_implementation(language_model_config(model))
    if implementation not in SUPPORTED_ATTENTION:
        raise ValueError(
            f"video_pruning with scorer 'verifier'/'topk' captures the target's attention, which supports the "
            f"target's language model running attn_implementation in {SUPPORTED_ATTENTION}, but it runs "
            f"{implementation!r}. Load the target with attn_implementation='sdpa' (or call "
            f"target.set_attn_implementation('sdpa')), or use PruneConfig(scorer='similarity'), which reads hidden "
            f"states and works with every attention kernel."
        )


def query_positions(prompt_ids: torch.Tensor, placeholder_ids: Sequence[int]) -> torch.Tensor:
    """The query tokens of a 1-D prompt: positions after the last video placeholder that are not themselves
    image/video placeholders (``placeholder_ids[0]`` is the video placeholder id). A prompt ending on its video
    has none, so its last position is used."""
    is_placeholder = torch.isin(prompt_ids, torch.tensor(list(placeholder_ids), device=prompt_ids.device))
    video_positions = (prompt_ids == placeholder_ids[0]).nonzero()
    last_video = int(video_positions[-1]) if video_positions.numel() else -1
    after_video = torch.arange(prompt_ids.numel(), device=prompt_ids.device) > last_video
    queries = (after_video & ~is_placeholder).nonzero().squeeze(1)
    return queries if queries.numel() else torch.tensor([prompt_ids.numel() - 1], device=prompt_ids.device)


# Largest working set of the side computation: float32 logits per chunk of query rows (2**24 floats = 64 MiB).
CAPTURE_CHUNK_FLOATS = 1 << 24


def video_attention_rows(
    query: torch.Tensor,
    key: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    query_rows: torch.Tensor,
    video_columns: torch.Tensor,
    max_chunk_floats: int | None = None,
) -> torch.Tensor:
    """Attention probabilities from `query_rows` to `video_columns`, averaged over heads and query rows.

    `query` is ``(1, heads, q_len, d)``, `key` is ``(1, kv_heads, kv_len, d)`` (grouped-query attention is
    handled without repeating the keys). Returns a float32 vector of length ``len(video_columns)``.

    Memory: the query rows go in chunks of ``c = max(1, max_chunk_floats // (heads * kv_len))`` rows
    (`max_chunk_floats` defaults to `CAPTURE_CHUNK_FLOATS`), and each chunk's softmax is taken in place, so the
    largest temporary is one chunk's float32 logits: at most ``max(max_chunk_floats, heads * kv_len)`` floats,
    whatever the number of query rows. Besides it, per chunk: its mask rows (``c x kv_len``) and its video
    probabilities (``heads x c x len(video_columns)``); per layer: a float32 copy of the keys when they are not float32
    and the key positions (``kv_len`` integers).
    """
    batch, heads, _, dim = query.shape
    kv_heads, kv_len = key.shape[1], key.shape[2]
    groups = heads // kv_heads
    n_query = query_rows.numel()
    # With a device map every decoder layer may live on its own device: index tensors follow the operand they index.
    query_rows = query_rows.to(query.device)
    video_columns = video_columns.to(query.device)
    keys = key.float().transpose(-1, -2)
    limit = CAPTURE_CHUNK_FLOATS if max_chunk_floats is None else max_chunk_floats
    total = torch.zeros(batch, video_columns.numel(), dtype=torch.float32, device=query.device)
    key_positions = torch.arange(kv_len, device=query.device)
    for rows in query_rows.split(max(1, limit // (heads * kv_len))):
        n = rows.numel()
        # Heads are laid out kv-head-major (repeat_kv repeats each kv head `groups` times consecutively).
        q = query[:, :, rows].float().reshape(batch, kv_heads, groups * n, dim)
        logits = torch.matmul(q, keys).mul_(scaling).view(batch, heads, n, kv_len)
        if attention_mask is None:
            # sdpa_mask may return None (causal skip): apply causality ourselves.
            allowed = key_positions[None, :] <= rows[:, None]
            logits.masked_fill_(~allowed, float("-inf"))
        else:
            rows_mask = attention_mask[:, :, rows.to(attention_mask.device), :kv_len].to(logits.device)
            if rows_mask.dtype == torch.bool:
                logits.masked_fill_(~rows_mask, float("-inf"))
            else:
                logits.add_(rows_mask.float())
        # Softmax in place (what torch.softmax computes, without its full-size output copy).
        logits.sub_(logits.amax(dim=-1, keepdim=True)).exp_()
        logits.div_(logits.sum(dim=-1, keepdim=True))
        total += logits[..., video_columns].sum(dim=(1, 2))
        del logits  # freed before the next chunk's logits are allocated
    return total[0] / (heads * n_query)


class VerifierAttentionCapture:
    """Records the target's query-to-video attention during its next language-model forward.

    Use ``arm()`` right before the target's prefill and ``disarm()`` right after (idempotent; the caller's
    ``finally`` calls it too). ``scores()`` returns the renormalised per-video-token scores.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        query_positions: torch.Tensor,
        video_positions: torch.Tensor,
        layers: Sequence[int],
        prompt_length: int,
    ) -> None:
        self.config = language_model_config(model)
        self.base_implementation: str | None = None
        self.query_positions = query_positions
        self.video_positions = video_positions
        self.layers = frozenset(layers)
        self.prompt_length = prompt_length
        self.timer = DeviceTimer()  # the side computation's time (SpecStats.capture_s)
        self._sum: torch.Tensor | None = None
        self._captured_layers: set[int] = set()
        self._name: str | None = None
        self._saved_implementation: str | None = None

    def arm(self) -> None:
        _ARMED.acquire()
        try:
            base = self.base_implementation = self.config._attn_implementation
            # The name keeps the base name as a prefix: transformers branches on "sdpa"/"flash" substrings.
            name = f"{base}{_CAPTURE_SUFFIX}{next(_NAME_COUNTER)}"
            with _REGISTRY_LOCK:
                AttentionInterface.register(name, self._make_attention_function(base))
                AttentionMaskInterface.register(name, ALL_MASK_ATTENTION_FUNCTIONS._global_mapping[base])
        except BaseException:
            _ARMED.release()
            raise
        self._name = name
        self._saved_implementation = self.config._attn_implementation_internal
        # Only the language model's config: the vision tower keeps its own implementation.
        self.config._attn_implementation_internal = name

    def disarm(self) -> None:
        if self._name is None:
            return
        self.config._attn_implementation_internal = self._saved_implementation
        with _REGISTRY_LOCK:
            AttentionInterface._global_mapping.pop(self._name, None)
            AttentionMaskInterface._global_mapping.pop(self._name, None)
        self._name = None
        _ARMED.release()

    def _make_attention_function(self, base: str) -> Callable:
        capture = self

        def attention_with_capture(module, query, key, value, attention_mask, scaling=None, **kwargs):
            base_function = _base_attention_function(base, module)
            output = base_function(module, query, key, value, attention_mask, scaling=scaling, **kwargs)
            layer = getattr(module, "layer_idx", None)
            # Only the prefill forward (queries = the whole prompt) of the selected layers is captured.
            if layer in capture.layers and query.shape[2] == capture.prompt_length:
                with capture.timer.section(query.device):
                    if scaling is None:
                        scaling = query.shape[-1] ** -0.5
                    rows = video_attention_rows(
                        query, key, attention_mask, scaling, capture.query_positions, capture.video_positions
                    )
                    capture._sum = rows if capture._sum is None else capture._sum + rows.to(capture._sum.device)
                capture._captured_layers.add(layer)
            return output

        return attention_with_capture

    def scores(self) -> torch.Tensor:
        """Per-video-token scores (mean over captured layers), renormalised to sum to 1 over the video tokens."""
        if self._sum is None or self._captured_layers != set(self.layers):
            missing = sorted(set(self.layers) - self._captured_layers)
            raise RuntimeError(
                f"The verifier attention capture did not see layers {missing} during the target's prefill. "
                "Was the prefill run with a different attention path (e.g. a compiled forward)?"
            )
        mean = self._sum / len(self._captured_layers)
        total = mean.sum()
        return mean / total if total > 0 else mean


def _base_attention_function(base: str, module: torch.nn.Module) -> Callable:
    if base == "eager":
        # Each modeling file defines its own eager attention: use the one of the module's own file.
        return sys.modules[type(module).__module__].eager_attention_forward
    return ALL_ATTENTION_FUNCTIONS[base]


@torch.no_grad()
def video_attention_scores(
    model: torch.nn.Module,
    input_ids: torch.LongTensor,
    video_token_id: int,
    placeholder_ids: Sequence[int] = (),
    layers: Sequence[int] | None = None,
    **model_inputs,
) -> torch.Tensor:
    """Run one forward of `model` on a batch-1 prompt and return its renormalised query-to-video attention scores.

    The same capture `generate(..., video_pruning=...)` performs during the target's prefill, exposed for analysis
    and benchmarks (e.g. the share of attention mass on the top 10% of video tokens).
    """
    check_capture_supported(model)
    prompt = input_ids[0]
    video_positions = (prompt == video_token_id).nonzero().squeeze(1)
    if video_positions.numel() == 0:
        raise ValueError("input_ids contain no video placeholder: there is no video attention to capture.")
    num_layers = model.config.get_text_config().num_hidden_layers
    capture = VerifierAttentionCapture(
        model,
        query_positions=query_positions(prompt, [video_token_id, *placeholder_ids]),
        video_positions=video_positions,
        layers=list(range(num_layers)) if layers is None else layers,
        prompt_length=prompt.numel(),
    )
    capture.arm()
    try:
        model(input_ids=input_ids, **model_inputs)
    finally:
        capture.disarm()
    return capture.scores()


# -- attention-free scorer: hidden-state similarity ----------------------------------------------------------------


def centred_similarity(video_states: torch.Tensor, query_states: torch.Tensor) -> torch.Tensor:
    """Per video token: cosine similarity of its hidden state to the mean query hidden state, both centred on the mean
    video hidden state, clamped at 0.

    Hidden states share a large common component (every video token looks alike to an uncentred cosine), so both sides
    are centred on the video tokens' mean first: what is left is how a token differs from the average video token,
    compared with where the query tokens point. `video_states` is ``(N, D)``, `query_states` ``(n_query, D)``; O((N +
    n_query) x D). Returns a float32 vector of length N.
    """
    video = video_states.float()
    centre = video.mean(dim=0, keepdim=True)
    video = torch.nn.functional.normalize(video - centre, dim=-1)
    query = torch.nn.functional.normalize(query_states.float().mean(dim=0, keepdim=True) - centre, dim=-1)
    return (video @ query.T)[:, 0].clamp_(min=0)


class HiddenStateSimilarityCapture(VerifierAttentionCapture):
    """Records, during the target's next prefill, how similar each video token's hidden state is to the query tokens'.

    The attention-free scorer (``PruneConfig(scorer="similarity")``): a forward hook on each selected decoder layer
    reads that layer's output hidden states of the prefill -- no attention weights, so it works with every attention
    kernel (flash-attention included) -- and scores every video token by :func:`centred_similarity`. It shares
    `VerifierAttentionCapture`'s bookkeeping and ``scores()`` (mean over the layers, renormalised over the video
    tokens) but never touches the attention implementation: ``arm()`` adds the hooks, ``disarm()`` removes them.
    """

    def __init__(self, model: torch.nn.Module, *args: Any, **kwargs: Any) -> None:
        super().__init__(model, *args, **kwargs)  # query_positions, video_positions, layers, prompt_length
        self.decoder_layers = model.get_decoder().layers
        self._handles: list = []

    def arm(self) -> None:
        self._handles = [self.decoder_layers[i].register_forward_hook(self._hook(i)) for i in sorted(self.layers)]

    def disarm(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _hook(self, layer: int) -> Callable:
        capture = self

        def record_similarity(module, args, output):
            hidden = output[0] if isinstance(output, tuple) else output
            if hidden.shape[1] != capture.prompt_length:  # only the prefill forward (queries = the whole prompt)
                return
            with capture.timer.section(hidden.device):
                video = hidden[0, capture.video_positions.to(hidden.device)]
                query = hidden[0, capture.query_positions.to(hidden.device)]
                similarity = centred_similarity(video, query)
                capture._sum = similarity if capture._sum is None else capture._sum + similarity.to(capture._sum.device)
            capture._captured_layers.add(layer)

        return record_similarity

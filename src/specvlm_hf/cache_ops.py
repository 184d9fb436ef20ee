"""Keep only the accepted path of a verified token tree in a transformers ``DynamicCache``, in place.

After a tree forward a cache holds ``prefix + block`` (the block = the tree nodes the forward appended, e.g.
``[root, *nodes]`` for the target or the fed nodes for the draft). ``DynamicCache.crop`` can only drop a suffix, so
keeping an accepted branch means: gather the kept block positions along the sequence axis of every layer, write them
right after the prefix, then crop the rest (the same move as SpecVLM's/EAGLE's ``KVCache.copy(indices,
prev_length)``). The gather touches only the block, never the prefix, so a round costs O(block), not O(prefix).

Memory: ``crop`` leaves a view on the old storage; the next forward's ``torch.cat`` in ``DynamicLayer.update`` makes
a fresh tensor and the old storage (with the rejected nodes) is freed, so memory never grows with rejected nodes.

transformers 5.23 and 5.24 share everything used here (``cache.layers``, ``DynamicLayer.keys/values``,
``is_initialized``, ``crop(negative)``); 5.24 only renamed the generate/forward argument ``past_key_values`` to
``cache``, which is the caller's concern. Only plain full-attention ``DynamicLayer`` layers are supported: a sliding
window layer drops old states and would also need a per-layer windowed tree mask, and quantized, offloaded-indexer or
static layers store states differently -- :func:`check_tree_cache` rejects them clearly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers.cache_utils import DynamicLayer

__all__ = ["check_tree_cache", "keep_accepted_path"]


def check_tree_cache(cache: object, *, argument: str = "draft_tree") -> None:
    """Raise a ValueError unless every layer of `cache` is a plain full-attention ``DynamicLayer``."""
    layers = getattr(cache, "layers", None)
    if layers is None:
        raise ValueError(f"`{argument}` needs a DynamicCache to keep the accepted branch in, got {type(cache).__name__}"
                         f"; let generate() create its default cache or use {argument}='chain'")
    for index, layer in enumerate(layers):
        if type(layer) is not DynamicLayer:
            detail = f" (sliding_window={layer.sliding_window})" if getattr(layer, "is_sliding", False) else ""
            raise ValueError(
                f"`{argument}` keeps the accepted branch of a token tree by gathering cache positions, which cache "
                f"layer {index} ({type(layer).__name__}{detail}) does not support: only full-attention DynamicLayer "
                f"layers do. Use {argument}='chain' for this model."
            )


def keep_accepted_path(cache: object, block_start: int, keep: Sequence[int] | torch.Tensor) -> None:
    """In place: keep the first `block_start` positions of `cache`, then the block positions `keep`, drop the rest.

    `keep` lists positions inside the block (0 = the first position after `block_start`), strictly increasing --
    a root-to-node path in tree numbering is. Afterwards every layer holds ``block_start + len(keep)`` positions,
    equal to what a forward on the prefix and the kept tokens alone would have stored.
    """
    check_tree_cache(cache)
    lengths = {layer.keys.shape[-2] for layer in cache.layers if layer.is_initialized}
    if len(lengths) > 1:
        raise ValueError(f"the cache's layers hold different lengths {sorted(lengths)}; a tree block must have been "
                         "appended to every layer")
    length = lengths.pop() if lengths else 0
    block = length - block_start
    indices = torch.as_tensor(keep, dtype=torch.long).reshape(-1)
    if block < 0:
        raise ValueError(f"block_start={block_start} is beyond the cache's {length} positions")
    if indices.numel() and (int(indices[0]) < 0 or int(indices[-1]) >= block
                            or bool((indices[1:] <= indices[:-1]).any())):
        raise ValueError(f"keep must be strictly increasing positions in [0, {block}) of the block, got "
                         f"{indices.tolist()}")
    kept = indices.numel()
    # A kept prefix of the block (a chain's accepted drafts) is already in place: cropping is enough.
    moves = not torch.equal(indices, torch.arange(kept))
    for layer in cache.layers:
        if not layer.is_initialized:  # e.g. KV-sharing layers hold nothing
            continue
        if moves:
            source = (block_start + indices).to(layer.keys.device)
            # generate() runs under no_grad; a forward in inference mode makes inference tensors, which may only be
            # written in place inside inference mode.
            with torch.no_grad(), torch.inference_mode(layer.keys.is_inference()):
                layer.keys[..., block_start : block_start + kept, :] = layer.keys.index_select(-2, source)
                layer.values[..., block_start : block_start + kept, :] = layer.values.index_select(-2, source)
        layer.crop(-(block - kept))

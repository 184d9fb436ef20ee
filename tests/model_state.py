"""What "the models are left exactly as they were" means in the tests: a snapshot of every piece of state the
package could touch (attention implementations of every sub-config, hooks, configs, rope_deltas, the registered
attention and mask functions), and a comparison that names what changed."""

from __future__ import annotations

import torch
from transformers.masking_utils import AttentionMaskInterface
from transformers.modeling_utils import AttentionInterface


def attention_implementations(config, prefix="") -> dict:
    out = {prefix or "<top>": config._attn_implementation}
    for key in getattr(config, "sub_configs", {}):
        sub = getattr(config, key, None)
        if sub is not None:
            out.update(attention_implementations(sub, f"{prefix}{key}."))
    return out


def snapshot(model) -> dict:
    rope = getattr(getattr(model, "model", None), "rope_deltas", None)
    return {
        "attn": attention_implementations(model.config),
        "hooks": sum(
            len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules()
        ),
        "generation_config": model.generation_config.to_dict(),
        "config": model.config.to_dict(),
        "training": model.training,
        "rope_deltas": None if rope is None else rope.clone(),
        "registries": (sorted(AttentionInterface._global_mapping), sorted(AttentionMaskInterface._global_mapping)),
    }


def assert_same_snapshot(before: dict, after: dict, skip=()) -> None:
    for key in before:
        if key in skip:
            continue
        if key == "rope_deltas":
            same = (before[key] is None) == (after[key] is None) and (
                before[key] is None or torch.equal(before[key], after[key]))
            assert same, f"rope_deltas changed: {before[key]} -> {after[key]}"
        else:
            assert before[key] == after[key], key

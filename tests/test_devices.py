"""Tensors that cross modules under a device map (``device_map="auto"``: every decoder layer, the vision tower and its
merger may each live on another GPU) are moved to, or index, the device of the tensor they meet.

This machine has no GPU, so the checks run on fake tensors (``torch._subclasses.FakeTensorMode``: shapes and
devices only, no data) placed on fake ``cuda:N`` devices. Fake tensors reject mixing devices in arithmetic
(matmul, masked_fill, add, index_select, ...) as CUDA would, but not in advanced indexing, which eager PyTorch
allows only with CPU indices or indices on the indexed tensor's device: `IndexDeviceCheck` enforces that rule. What
needs real values (selection, sampling, the stopping criteria, whole forwards) cannot run on fake tensors; those
paths keep every tensor on the prompt's device or move it there explicitly (reviewed, not tested here).
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.overrides import TorchFunctionMode

from specvlm_hf import PruneConfig
from specvlm_hf.candidate import PrunedVideoCandidateGenerator
from specvlm_hf.capture import VerifierAttentionCapture, video_attention_rows
from specvlm_hf.testbed import tiny


class IndexDeviceCheck(TorchFunctionMode):
    """Eager PyTorch's rule for advanced indexing, which fake tensors do not enforce: a tensor index lives on the CPU
    or on the device of the tensor it indexes."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in (torch.Tensor.__getitem__, torch.Tensor.__setitem__):
            operand, index = args[0], args[1]
            for item in index if isinstance(index, tuple) else (index,):
                if isinstance(item, torch.Tensor) and item.device.type != "cpu" and item.device != operand.device:
                    raise RuntimeError(f"an index on {item.device} indexes a tensor on {operand.device}")
        return func(*args, **(kwargs or {}))


@pytest.fixture()
def devices():
    """Fake tensors on fake CUDA devices, with the indexing rule enforced."""
    with FakeTensorMode(allow_non_fake_inputs=True), IndexDeviceCheck():
        yield


def test_the_checks_catch_what_cuda_rejects(devices):
    """Power: the harness fails exactly the operations a multi-GPU run would fail."""
    a, b = torch.ones(4, device="cuda:1"), torch.ones(4, device="cuda:0")
    rows = torch.tensor([0, 2], device="cuda:0")
    with pytest.raises(RuntimeError, match="index on cuda:0 indexes a tensor on cuda:1"):
        a[rows]
    with pytest.raises(Exception, match="found at least two devices"):
        a.masked_fill(b > 0, 0.0)
    assert a[rows.cpu()].device == a[rows.to(a.device)].device == torch.device("cuda:1")


@pytest.mark.parametrize("with_mask", [False, True])
def test_capture_side_computation_on_another_layer_device(devices, with_mask):
    """A decoder layer on cuda:1 while the prompt (hence the query/video positions) is on cuda:0."""
    length, heads, kv_heads, dim = 12, 4, 2, 8
    query = torch.randn(1, heads, length, dim, device="cuda:1")
    key = torch.randn(1, kv_heads, length, dim, device="cuda:1")
    mask = torch.ones(1, 1, length, length, dtype=torch.bool, device="cuda:1").tril() if with_mask else None
    rows = torch.arange(8, 12, device="cuda:0")
    columns = torch.arange(2, 6, device="cuda:0")
    out = video_attention_rows(query, key, mask, dim**-0.5, rows, columns)
    assert out.shape == (4,) and out.device == torch.device("cuda:1")


def test_capture_across_layers_on_different_devices(qwen_pair, devices):
    """The registered capture function, called as the decoder layers would call it: layer 0 on cuda:0, layer 1 on
    cuda:1; the per-layer rows are summed on the first layer's device."""
    target, _ = qwen_pair
    layers = target.get_decoder().layers
    length = 12
    capture = VerifierAttentionCapture(target, query_positions=torch.arange(8, 12, device="cuda:0"),
                                       video_positions=torch.arange(2, 6, device="cuda:0"), layers=[0, 1],
                                       prompt_length=length)
    attention = capture._make_attention_function("sdpa")
    for index, device in ((0, "cuda:0"), (1, "cuda:1")):
        module = layers[index].self_attn
        heads, kv_heads = target.config.get_text_config().num_attention_heads, module.config.num_key_value_heads
        query = torch.randn(1, heads, length, module.head_dim, device=device)
        key = torch.randn(1, kv_heads, length, module.head_dim, device=device)
        attention(module, query, key, key, None, scaling=module.scaling)
    assert capture._captured_layers == {0, 1}
    assert capture._sum.shape == (4,) and capture._sum.device == torch.device("cuda:0")  # scores() then renormalises


def _on(output, devices_by_key):
    """The encoder output with each tensor moved to the fake device its producer would live on."""
    def move(value, device):
        if isinstance(value, torch.Tensor):
            return value.to(device)
        if isinstance(value, (list, tuple)):
            return type(value)(move(item, device) for item in value)
        return value

    fields = {key: move(value, devices_by_key.get(key, "cuda:1")) for key, value in output.items()}
    if "deepstack_features" in fields:  # each deepstack level comes from another vision block: another device
        fields["deepstack_features"] = [move(level, f"cuda:{2 + i}") for i, level in
                                        enumerate(output["deepstack_features"])]
    return type(output)(**fields)


@pytest.mark.parametrize("model_type", ["qwen2_5_vl", "qwen3_vl"])
def test_draft_prefill_keeps_the_kept_rows_where_the_features_are(model_type, monkeypatch):
    """The draft's own video features come from its vision merger (cuda:1; deepstack levels from other blocks) while
    the draft's first parameter is on cuda:0: the kept rows must index each of them."""
    target, draft = tiny.build_tiny_pair(model_type, seed=0)
    inputs = tiny.make_inputs(tiny.build_processor(model_type), video=tiny.make_video(num_frames=4))
    generators = []
    original_init = PrunedVideoCandidateGenerator.__init__

    def remember(self, **kwargs):
        original_init(self, **kwargs)
        generators.append(self)

    monkeypatch.setattr(PrunedVideoCandidateGenerator, "__init__", remember)
    target.generate(**inputs, max_new_tokens=3, do_sample=False, assistant_model=draft,
                    video_pruning=PruneConfig(keep_ratio=0.5))
    generator = generators[-1]
    real = draft.get_video_features(pixel_values_videos=inputs["pixel_values_videos"],
                                    video_grid_thw=inputs["video_grid_thw"], return_dict=True)
    kept = generator.kept_rows.numel()
    with FakeTensorMode(allow_non_fake_inputs=True), IndexDeviceCheck():
        placed = _on(copy.copy(real), {"pooler_output": "cuda:1"})
        monkeypatch.setattr(draft, "get_video_features",
                            lambda pixel_values_videos=None, video_grid_thw=None, **kwargs: placed)
        generator.draft_device = torch.device("cuda:0")
        generator.kept_rows = generator.kept_rows.to("cuda:0")  # the prompt's device
        features = generator._draft_features()["video"]
    pooled = features["pooler_output"]
    pooled = pooled[0] if isinstance(pooled, (list, tuple)) else pooled[0]
    assert pooled.shape[0] == kept and pooled.device == torch.device("cuda:1")
    if model_type == "qwen3_vl":
        assert [level[0].device for level in features["deepstack_features"]] == \
            [torch.device(f"cuda:{2 + i}") for i in range(len(real["deepstack_features"]))]

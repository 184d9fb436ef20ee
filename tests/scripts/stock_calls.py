"""Runs a set of generate calls WITHOUT `video_pruning` and prints their outputs and errors as JSON.

tests/test_stock_unchanged.py runs it in two fresh interpreters — one that never imports specvlm_hf, one that does —
and requires identical results: importing the package must be a strict no-op for stock calls.
"""

import importlib
import json
import sys
import types
from pathlib import Path

import torch

if sys.argv[1] == "with-import":
    import specvlm_hf  # noqa: F401

# Load the tiny-model builders as a standalone package so that `specvlm_hf/__init__.py` (which registers the
# kwarg) never runs in the "without-import" interpreter.
_testbed = types.ModuleType("_standalone_testbed")
_testbed.__path__ = [str(Path(__file__).resolve().parents[2] / "src" / "specvlm_hf" / "testbed")]
sys.modules["_standalone_testbed"] = _testbed
tiny = importlib.import_module("_standalone_testbed.tiny")

torch.manual_seed(0)
target, draft = tiny.build_tiny_pair("qwen2_5_vl", seed=0)
_, same_vocab_draft = tiny.build_tiny_pair("qwen2_5_vl", seed=0, draft_vocab=152064)
processor = tiny.build_processor("qwen2_5_vl")
inputs = tiny.make_inputs(processor, video=tiny.make_video(num_frames=4, height=56, width=56))

calls = {
    "greedy": dict(max_new_tokens=12),
    "sample": dict(max_new_tokens=12, do_sample=True, temperature=0.7, top_k=50, top_p=0.9),
    "stock_assisted": dict(max_new_tokens=12, assistant_model=same_vocab_draft),
    "stock_assisted_padded_vocab": dict(max_new_tokens=12, assistant_model=draft),
    "typo_kwarg": dict(max_new_tokens=4, video_prunning=1),
    "beams": dict(max_new_tokens=6, num_beams=2),
    "dict_output": dict(max_new_tokens=5, return_dict_in_generate=True, output_scores=True),
}
results = {}
for name, kwargs in calls.items():
    torch.manual_seed(1)
    try:
        out = target.generate(**inputs, **kwargs)
        if hasattr(out, "sequences"):
            results[name] = {"sequences": out.sequences.tolist(), "scores": [round(float(s.max()), 3) for s in out.scores]}
        else:
            results[name] = out.tolist()
    except Exception as error:  # noqa: BLE001 - the error itself is the observed behaviour
        results[name] = f"{type(error).__name__}: {error}"
results["rope_deltas"] = target.model.rope_deltas.tolist()
imported = "specvlm_hf" in sys.modules
assert imported == (sys.argv[1] == "with-import"), "the without-import run must never import specvlm_hf"
print(json.dumps(results))

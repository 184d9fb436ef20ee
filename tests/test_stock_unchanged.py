"""Importing specvlm_hf changes nothing for calls without `video_pruning`: same outputs, same errors as a fresh
interpreter that never imports it. Also `unregister()` restores the stock methods exactly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from transformers.generation.utils import GenerationMixin

SCRIPT = Path(__file__).parent / "scripts" / "stock_calls.py"


def run(mode: str) -> dict:
    done = subprocess.run([sys.executable, str(SCRIPT), mode], capture_output=True, text=True, timeout=600, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_stock_generate_unchanged_by_import():
    without, with_import = run("without-import"), run("with-import")
    assert without.keys() == with_import.keys()
    for name in without:
        assert without[name] == with_import[name], name
    # The script exercises real errors, not only successes.
    assert without["typo_kwarg"].startswith("ValueError") and "video_prunning" in without["typo_kwarg"]
    assert "different tokenizers" in without["stock_assisted_padded_vocab"]


def test_unregister_restores_stock_methods_exactly(qwen_pair, video_inputs):
    import specvlm_hf

    patched = {name: GenerationMixin.__dict__[name] for name in ("generate", "_get_candidate_generator")}
    specvlm_hf.unregister()
    try:
        assert not specvlm_hf.is_registered()
        for name, function in patched.items():
            assert GenerationMixin.__dict__[name] is not function
            assert GenerationMixin.__dict__[name] is function.__wrapped__
        target, draft = qwen_pair
        with pytest.raises(ValueError, match="video_pruning"):
            target.generate(**video_inputs(num_frames=2), max_new_tokens=2, assistant_model=draft,
                            video_pruning=specvlm_hf.PruneConfig())
    finally:
        specvlm_hf.register()
    assert specvlm_hf.is_registered()

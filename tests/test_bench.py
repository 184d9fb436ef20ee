"""Smoke test of the benchmark CLI on untrained testbed-architecture models (no weights needed, a few seconds).

Random weights say nothing about acceptance or speed; this checks that the CLI runs every method, writes the JSON
schema, the report and the plots, and that a speculative output differing from AR is caught and fails the run.
"""

from __future__ import annotations

import json

import pytest
import torch

from specvlm_hf.bench import __main__ as cli
from specvlm_hf.bench import methods

TINY = ["--samples", "2", "--frames", "2", "--max-new-tokens", "6", "--keep", "0.5",
        "--scorers", "verifier,uniform,random,topk", "--num-draft-tokens", "3", "--threads", "1"]


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    """The untrained testbed target and draft, saved so that the CLI loads them like real checkpoints."""
    from specvlm_hf.testbed.models import build_draft, build_target

    root = tmp_path_factory.mktemp("bench_models")
    for name, model in (("target", build_target()), ("draft", build_draft())):
        with torch.no_grad():
            # Large logit margins: random weights otherwise produce near-ties whose argmax may flip between a
            # multi-token verification forward and a one-token AR forward (DESIGN.md §4).
            model.get_output_embeddings().weight.mul_(50)
        model.save_pretrained(root / name)
    return ["--target", str(root / "target"), "--draft", str(root / "draft")]


def test_smoke_run_writes_schema(model_dirs, tmp_path):
    out = tmp_path / "out"
    sets = ["--mid-frames", "4", "--long-frames", "6", "--long-samples", "1"]
    code = cli.main([*model_dirs, *TINY, *sets, "--out", str(out)])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["schema_version"] == cli.SCHEMA_VERSION
    assert {"command", "config", "environment", "methods", "sets", "mismatches", "claims", "targets"} <= set(results)
    assert results["mismatches"] == []
    expected = {"ar", "stock-assisted", "sd-full", "self-verifier-0.5", "sd-verifier/cap0.5-0.5"} | {
        f"sd-{s}-0.5" for s in ("verifier", "uniform", "random", "topk")}
    assert set(results["methods"]) == expected
    assert set(results["sets"]) == {"main", "mid", "long"}
    main = results["sets"]["main"]
    assert len(main["samples"]) == 2 and main["cost"]["ratio"] > 0
    sample = main["samples"][0]
    assert sample["video_tokens"] == 36 and sample["ar_prefill_s"] > 0
    assert 0 < sample["attention"]["top10_share"] <= 1
    for name in expected - {"stock-assisted"}:  # stock may legitimately raise on a random pair (recorded)
        entry = sample["methods"][name]
        assert entry["matches_ar"] is True and entry["seconds"] > 0
    stats = sample["methods"]["sd-verifier-0.5"]["stats"]
    assert stats["kept_video_tokens"] == 18 and stats["video_tokens"] == 36
    summary = main["summary"]["methods"]["sd-verifier-0.5"]
    assert {"tau", "speedup_decode", "speedup_e2e", "accept_histogram", "mean_times_s"} <= set(summary)
    assert {"median", "min", "max"} <= set(summary["speedup_decode"])
    assert any(c["b"] == "sd-uniform-0.5" and c["ci_low"] <= c["ci_high"] for c in main["summary"]["comparisons"])
    assert results["sets"]["long"]["samples"][0]["video_tokens"] == 108
    assert [c["id"] for c in results["claims"]] == ["a", "b", "c", "d"]
    assert all(c["verdict"] in ("holds", "does not hold", "not measured") for c in results["claims"])
    report = (out / "RESULTS.md").read_text()
    assert "Evidence: the paper's claims" in report and "identical to AR" in report
    for plot in ("tau_vs_keep.png", "speedup_vs_keep.png", "speedup_vs_video_tokens.png"):
        assert (out / plot).stat().st_size > 0


def test_mismatch_fails_the_run(model_dirs, tmp_path, monkeypatch, capsys):
    real = methods.timed_generate

    def corrupted(model, inputs, **kwargs):
        tokens, seconds = real(model, inputs, **kwargs)
        config = kwargs.get("video_pruning")
        if config is not None and config.scorer == "uniform":
            tokens = [*tokens[:-1], tokens[-1] + 1]  # one SD method's output differs in its last token
        return tokens, seconds

    monkeypatch.setattr(methods, "timed_generate", corrupted)
    out = tmp_path / "out"
    only_main = ["--long-frames", "0", "--mid-frames", "0", "--no-stock", "--no-attention"]
    code = cli.main([*model_dirs, *TINY, *only_main, "--out", str(out)])
    assert code != 0
    results = json.loads((out / "results.json").read_text())
    assert results["mismatches"] and {m["method"] for m in results["mismatches"]} == {"sd-uniform-0.5"}
    first = results["mismatches"][0]
    assert first["first_difference"] == len(first["ar_tokens"]) - 1
    assert results["sets"]["main"]["summary"]["methods"]["sd-uniform-0.5"]["all_match_ar"] is False
    assert "MISMATCH" in capsys.readouterr().err
    assert "DIFFERED" in (out / "RESULTS.md").read_text()

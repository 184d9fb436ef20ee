"""Smoke test of the benchmark CLI on untrained testbed-architecture models (no weights needed, a few seconds).

Random weights say nothing about acceptance or speed; this checks that the CLI runs every method, writes the JSON
schema, the report and the plots, and that a speculative output differing from AR is caught and fails the run (but
not a lossy loose row's). The command line itself: --help, sources that cannot load failing at once, no plots without
matplotlib. Also the caption fact parser and the fidelity/diagnostic helpers on hand-written data.
"""

from __future__ import annotations

import json
import types
import warnings
from pathlib import Path

import huggingface_hub
import pytest
import torch

from specvlm_hf.bench import __main__ as cli
from specvlm_hf.bench import methods, summary
from specvlm_hf.testbed.synthetic import caption_facts, fact_score

ROOT = Path(__file__).resolve().parents[1]

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
            # multi-token verification forward and a one-token AR forward (docs/design.md §4).
            model.get_output_embeddings().weight.mul_(50)
        model.save_pretrained(root / name)
    return ["--target", str(root / "target"), "--draft", str(root / "draft")]


def test_smoke_run_writes_schema(model_dirs, tmp_path):
    out = tmp_path / "out"
    sets = ["--mid-frames", "4", "--long-frames", "6", "--long-samples", "1"]
    code = cli.main([*model_dirs, *TINY, *sets, "--verify", "strict", "--out", str(out)])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["schema_version"] == cli.SCHEMA_VERSION
    assert {"command", "config", "environment", "methods", "sets", "mismatches", "claims", "targets"} <= set(results)
    assert results["mismatches"] == []
    expected = {"ar", "stock-assisted", "sd-full", "self-verifier-0.5", "sd-verifier/cap0.5-0.5",
                "sd-verifier/paper-0.5"} | {
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
    only_main = ["--long-frames", "0", "--mid-frames", "0", "--no-stock", "--no-attention", "--verify", "strict"]
    code = cli.main([*model_dirs, *TINY, *only_main, "--out", str(out)])
    assert code != 0
    results = json.loads((out / "results.json").read_text())
    assert results["mismatches"] and {m["method"] for m in results["mismatches"]} == {"sd-uniform-0.5"}
    first = results["mismatches"][0]
    assert first["first_difference"] == len(first["ar_tokens"]) - 1
    assert results["sets"]["main"]["summary"]["methods"]["sd-uniform-0.5"]["all_match_ar"] is False
    assert "MISMATCH" in capsys.readouterr().err
    assert "DIFFERED" in (out / "RESULTS.md").read_text()


LOOSE = ["--verify", "strict,loose", "--relax-ratios", "0,0.7", "--shift-windows", "0,1", "--long-frames", "0",
         "--mid-frames", "0", "--no-stock", "--no-self", "--no-attention", "--stage1-max-share", "0.5"]
LOOSE_ROWS = {"loose-r0-w0", "loose-r0-w1", "loose-r0.7-w0", "loose-r0.7-w1", "loose-topk-r0.7-w1"}


def test_loose_rows_fidelity_and_report_only(model_dirs, tmp_path):
    out = tmp_path / "out"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = cli.main([*model_dirs, *TINY, *LOOSE, "--out", str(out)])
    assert code == 0
    # The relax 0 / shift 0 row and the diagnostics replay are strict on purpose: their warning is ours to silence.
    assert not [w for w in caught if "can never accept a mismatch" in str(w.message)]
    results = json.loads((out / "results.json").read_text())
    assert LOOSE_ROWS <= set(results["methods"])
    main = results["sets"]["main"]
    for sample in main["samples"]:
        assert sample["methods"]["loose-r0-w0"]["matches_ar"] is True  # relax 0 / shift 0 = strict = AR
        for name in LOOSE_ROWS - {"loose-r0-w0"}:
            entry = sample["methods"][name]
            assert {"tokens", "text"} <= set(entry)  # lossy rows always record their output
            assert {"relaxed_accepted", "shift_accepted"} <= set(entry["stats"])
        diagnostics = sample["lvspec_diagnostics"]
        assert diagnostics["matches_ar"] is True
        assert len(diagnostics["relevance_own"]) == len(sample["ar_tokens"]) == len(diagnostics["relevance_predicting"])
        assert all(0 <= position < len(sample["ar_tokens"]) for position, _, _ in diagnostics["rejections"])
        assert len(sample["reference_slots"]) == len(sample["reference_caption"].split())
    loose = main["summary"]["loose"]
    assert loose["strict"] == "sd-verifier-0.5"
    assert set(loose["rows"]) == {"ar", "sd-verifier-0.5"} | LOOSE_ROWS
    row = loose["rows"]["loose-r0-w0"]
    assert row["identical"] == 1.0 and row["ar_agreement"] == 1.0
    assert row["tau_vs_strict"]["estimate"] == pytest.approx(1.0)  # the owned loop drafts exactly as the stock one
    for name in LOOSE_ROWS:
        r = loose["rows"][name]
        assert 0 <= r["fact_accuracy"] <= 1 and 0 <= r["exact_match"] <= 1 and 0 <= r["ar_agreement"] <= 1
        assert r["settings"]["relax_ratio"] in (0.0, 0.7)
    assert main["summary"]["methods"]["loose-r0-w0"]["tokens_equal_ar"] == 2
    d = main["summary"]["lvspec_diagnostics"]
    assert d["videos"] == 2 and d["replay_matches_ar"] == 2 and d["replay_histogram_equals_strict"]
    assert [t["id"] for t in results["targets"]][-1] == "T4"
    report = (out / "RESULTS.md").read_text()
    assert "## Loose verification (LVSpec)" in report and "**(default)**" in report
    assert "Why: two diagnostics" in report
    assert (out / "loose_fidelity_vs_speedup.png").stat().st_size > 0
    # --report-only recomputes everything from the JSON alone.
    again = tmp_path / "again"
    assert cli.main(["--report-only", str(out / "results.json"), "--out", str(again)]) == 0
    assert "## Loose verification (LVSpec)" in (again / "RESULTS.md").read_text()
    assert (again / "loose_fidelity_vs_speedup.png").stat().st_size > 0


def test_loose_mismatch_counts_only_for_relax0_shift0(model_dirs, tmp_path, monkeypatch):
    real = methods.timed_generate

    def corrupted(model, inputs, **kwargs):
        tokens, seconds = real(model, inputs, **kwargs)
        config = kwargs.get("video_pruning")
        if config is not None and config.verify == "loose":  # every loose row's output differs from AR
            tokens = [*tokens[:-1], tokens[-1] + 1]
        return tokens, seconds

    monkeypatch.setattr(methods, "timed_generate", corrupted)
    out = tmp_path / "out"
    code = cli.main([*model_dirs, *TINY, *LOOSE, "--no-loose-diagnostics", "--out", str(out)])
    assert code != 0
    results = json.loads((out / "results.json").read_text())
    assert {m["method"] for m in results["mismatches"]} == {"loose-r0-w0"}  # lossy rows never count
    assert len(results["mismatches"]) == 2
    loose = results["sets"]["main"]["summary"]["loose"]["rows"]
    assert all(loose[name]["identical"] == 0.0 for name in LOOSE_ROWS)
    assert "MISMATCH: counted as a failure" in (out / "RESULTS.md").read_text()


def test_report_only_without_loose_rows(model_dirs, tmp_path):
    out = tmp_path / "out"
    strict_only = ["--verify", "strict", "--long-frames", "0", "--mid-frames", "0", "--no-stock", "--no-self",
                   "--no-attention"]
    assert cli.main([*model_dirs, *TINY, *strict_only, "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert not any(m.startswith("loose-") for m in results["methods"])
    for sample in results["sets"]["main"]["samples"]:  # an old results.json has neither of these
        sample.pop("reference_slots", None)
    (out / "results.json").write_text(json.dumps(results))
    again = tmp_path / "again"
    assert cli.main(["--report-only", str(out / "results.json"), "--out", str(again)]) == 0
    report = (again / "RESULTS.md").read_text()
    assert "Loose verification" not in report and not (again / "loose_fidelity_vs_speedup.png").exists()
    assert "T4" not in {t["id"] for t in json.loads((again / "results.json").read_text())["targets"]}


# -- the command line -------------------------------------------------------------------------------------------------


def test_help_names_the_console_script_and_shows_defaults(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.parse_args(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # as printed, without the terminal-width line breaks
    assert text.startswith("usage: specvlm-bench ")
    assert "(default: 300)" in text and "(default: 0.1,0.25,0.5)" in text and "(default: bench-results)" in text
    assert "specvlm-bench --samples 10 " in text  # the quick-run example


def test_out_does_not_default_into_the_committed_benchmarks(model_dirs):
    assert cli.parse_args(model_dirs).out == Path("bench-results")
    bench_target = (ROOT / "Makefile").read_text().split("\nbench:", 1)[1].split("\n\n", 1)[0]
    assert "--out benchmarks" in bench_target  # make bench still writes the committed run


def _source_error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        cli.parse_args(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err.splitlines()[-1]


def test_sources_that_cannot_load_fail_at_once_with_a_hint(model_dirs, tmp_path, monkeypatch, capsys):
    asked = []

    def unreachable(name, timeout=None):
        asked.append((name, timeout))
        raise ConnectionError("Name or service not known")

    monkeypatch.chdir(tmp_path)  # outside the repository: no weights/ here
    monkeypatch.setattr(huggingface_hub, "model_info", unreachable)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    draft = model_dirs[2:]
    message = _source_error(["--target", "nobody/no-such-model", *draft], capsys)
    assert "--target nobody/no-such-model: no such directory, and the Hugging Face Hub is unreachable" in message
    assert asked == [("nobody/no-such-model", 10)]  # one request with a timeout, no retries

    def not_found(name, timeout=None):
        response = types.SimpleNamespace(headers={}, request=None)
        raise huggingface_hub.errors.RepositoryNotFoundError("404", response=response)

    monkeypatch.setattr(huggingface_hub, "model_info", not_found)
    assert "no such model on the Hugging Face Hub" in _source_error(["--target", "nobody/typo", *draft], capsys)
    message = _source_error(["--draft", "weights/testbed-draft", *model_dirs[:2]], capsys)
    assert "the default testbed pair is in the repository's weights/" in message
    assert "not a Hugging Face Hub id" in _source_error(["--target", "./no/such/dir", *draft], capsys)
    (tmp_path / "empty").mkdir()
    assert "has no config.json" in _source_error(["--target", str(tmp_path / "empty"), *draft], capsys)
    message = _source_error([*model_dirs, "--videos", str(tmp_path / "no-clips")], capsys)
    assert "--videos" in message and "not a folder of video files" in message

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub, "model_info", None)  # offline: the Hub must not be asked at all
    message = _source_error(["--target", "nobody/no-such-model", *draft], capsys)
    assert "not in the local Hugging Face cache (HF_HUB_OFFLINE is set" in message


def test_without_matplotlib_the_plots_are_skipped_with_a_message_before_the_run(model_dirs, tmp_path, monkeypatch,
                                                                                capsys):
    monkeypatch.setattr(cli, "matplotlib_available", lambda: False)

    def run(args, command):
        raise RuntimeError("stop: the run would start here")

    monkeypatch.setattr(cli, "run", run)
    with pytest.raises(RuntimeError, match="stop"):
        cli.main([*model_dirs, "--out", str(tmp_path / "unused")])
    assert "matplotlib is not installed: the plots will be skipped" in capsys.readouterr().err

    committed = ROOT / "benchmarks" / "results.json"
    if not committed.is_file():
        pytest.skip("benchmarks/results.json is not present")
    out = tmp_path / "out"
    assert cli.main(["--report-only", str(committed), "--out", str(out)]) == 0
    assert not list(out.glob("*.png"))
    report = (out / "RESULTS.md").read_text()
    assert ".png)" not in report and "(plot skipped: matplotlib is not installed)" in report


# -- the caption fact parser and the fidelity helpers (no models) -------------------------------------------------------

TWO = ("the video shows two objects . the red square starts at the top left and moves right . "
       "the blue ring starts at the bottom right and stays still .")
ONE = "i see one object . a green cross in the top right corner that moves down ."


def test_caption_facts_on_correct_captions():
    assert caption_facts(TWO) == {"count": "two", "objects": [
        {"colour": "red", "shape": "square", "row": "top", "col": "left", "motion": "right"},
        {"colour": "blue", "shape": "ring", "row": "bottom", "col": "right", "motion": "still"}]}
    assert caption_facts(ONE.split()) == {"count": "one", "objects": [
        {"colour": "green", "shape": "cross", "row": "top", "col": "right", "motion": "down"}]}
    assert fact_score(TWO, TWO) == (11, 11) and fact_score(ONE, ONE) == (6, 6)


def test_fact_score_one_wrong_fact():
    assert fact_score(TWO.replace("moves right", "moves down"), TWO) == (10, 11)
    assert fact_score(TWO.replace("blue ring", "blue cross"), TWO) == (10, 11)
    assert fact_score(TWO.replace("two objects", "one objects"), TWO) == (10, 11)
    assert fact_score(ONE.replace("green", "white"), ONE) == (5, 6)


def test_fact_score_shifted_words():
    # A dropped column word: the motion word is not read as the column, every other fact still counts.
    assert caption_facts("the red square starts at the top and moves left .")["objects"][0] == {
        "colour": "red", "shape": "square", "row": "top", "col": None, "motion": "left"}
    dropped = TWO.replace("top left and moves right", "top and moves right")
    assert fact_score(dropped, TWO) == (10, 11)
    # A repeated word shifts the rest of the sentence but not the facts the parser reads.
    assert fact_score(TWO.replace("the red square", "the the red square"), TWO) == (11, 11)
    # A missing sentence end merges the two objects: the second object's facts are lost.
    merged = TWO.replace("moves right . the blue", "moves right the blue")
    assert fact_score(merged, TWO) == (6, 11)
    # A lone "moves" or "stays" without its direction states no motion.
    assert caption_facts("a red ring in the top left corner that stays .")["objects"][0]["motion"] is None


def test_fact_score_garbage():
    assert caption_facts("") == {"count": None, "objects": []}
    assert fact_score("", TWO) == (0, 11)
    assert fact_score(". . . the the and", TWO) == (0, 11)
    assert fact_score("banana 42 ?", ONE) == (0, 6)


def test_fidelity_helpers():
    assert summary.ar_agreement([1, 2, 3], [1, 2, 3]) == 1.0
    assert summary.ar_agreement([1, 2, 3, 4], [1, 9, 3]) == 0.5
    assert summary.ar_agreement([], []) == 1.0
    assert summary.auc([3.0, 4.0], [1.0, 2.0]) == 1.0 and summary.auc([1.0], [2.0]) == 0.0
    assert summary.auc([1.0, 2.0], [1.0, 2.0]) == 0.5 and summary.auc([], [1.0]) is None
    words = ONE.split()
    sample = {"ar_text": ONE, "ar_tokens": list(range(len(words) + 1)), "ar_equals_reference": True,
              "reference_slots": [None, None, "count", None, None, None, "colour", "shape", None, None, "row", "col",
                                  None, None, "motion", "motion", None]}
    classes, source = summary.token_classes(sample)
    assert source == "gt"
    assert [w for w, c in zip(words, classes) if c == "fact"] == ["one", "green", "cross", "top", "right", "moves",
                                                                  "down"]
    assert [w for w, c in zip(words, classes) if c == "structure"] == ["object"]
    assert classes[-1] == "structure"  # the end of the caption after the last object sentence
    sample["ar_equals_reference"] = False
    assert summary.token_classes(sample) == (classes, "vocab")

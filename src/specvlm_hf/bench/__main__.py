"""specvlm-bench (or python -m specvlm_hf.bench): every decoding method on the same videos, every output checked.

Run from a clone of the repository, the defaults benchmark the trained testbed pair in weights/ on synthetic videos:

    specvlm-bench --samples 10 --mid-frames 0 --long-frames 0 --verify strict --no-attention
                                                            # a quick run: 1-2 minutes on a CPU
    specvlm-bench --out benchmarks --analysis benchmarks/analysis.md   # the committed run (make bench), ~26 min
    specvlm-bench --target Qwen/Qwen2.5-VL-7B-Instruct --draft Qwen/Qwen2.5-VL-3B-Instruct --videos clips/ \\
        --prompt "Describe the video." --frames 16 --device cuda --dtype bfloat16 --samples 50 --long-frames 0 \\
        --mid-frames 0 --out my_results

Writes <out>/results.json (every raw number), <out>/RESULTS.md and <out>/*.png (the plots need matplotlib, in the
`bench` extra). Exits with 1 if any lossless speculative output differs from the target-alone (AR) output. The loose
(LVSpec) rows are lossy by design and are measured for fidelity instead, except relax 0 / shift 0, which must equal
AR like every strict row.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import re
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from . import claims, report, summary
from .inputs import BenchInput, folder_inputs, testbed_inputs, to_device
from .methods import AR_PREFILL, build_loose_methods, build_methods, scorer_labels
from .runner import RunSettings, SetResult, annotate_captions, run_set, set_threads

SCHEMA_VERSION = 1
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
DEFAULT_PROMPT = "describe the video ."  # a testbed prompt; pass --prompt for real checkpoints
# Warnings our own rows trigger on purpose: the loose relax 0 / shift 0 row (and the diagnostics replay) is strict by
# design, which PruneConfig(verify="loose") warns about on every call.
EXPECTED_WARNINGS = (r"PruneConfig\(verify='loose'\) with num_draft_tokens=\d+, relax_ratio=0 and shift_window=0 ",)


def _floats(text: str) -> list[float]:
    values = [float(v) for v in text.split(",") if v.strip()]
    if not values or any(not 0 < v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated keep ratios in (0, 1), got {text!r}")
    return values


def _names(text: str) -> list[str]:
    from specvlm_hf.config import SCORERS

    names = [v.strip() for v in text.split(",") if v.strip()]
    bad = [n for n in names if n not in SCORERS]
    if not names or bad:
        raise argparse.ArgumentTypeError(f"scorers must be among {SCORERS}, got {text!r}")
    return names


def _verify_modes(text: str) -> list[str]:
    modes = [v.strip() for v in text.split(",") if v.strip()]
    if not modes or any(m not in ("strict", "loose") for m in modes):
        raise argparse.ArgumentTypeError(f"expected 'strict', 'loose' or 'strict,loose', got {text!r}")
    return modes


def _ratios(text: str) -> list[float]:
    values = [float(v) for v in text.split(",") if v.strip()]
    if not values or any(not 0 <= v <= 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated relax ratios in [0, 1], got {text!r}")
    return values


def _windows(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated shift windows >= 0, got {text!r}")
    return values


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Every option's default in --help (lists as they are typed: comma-separated), the module docstring as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:  # unset options and flags: nothing to show
            return action.help
        return super()._get_help_string(action)

    def _expand_help(self, action: argparse.Action) -> str:
        if isinstance(action.default, list):
            action = copy.copy(action)
            action.default = ",".join(str(value) for value in action.default)
        return super()._expand_help(action)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line: models, videos, the row sets, the loose sweep, seed and environment knobs."""
    p = argparse.ArgumentParser(prog="specvlm-bench", description=__doc__, formatter_class=_HelpFormatter)
    p.add_argument("--target", default="weights/testbed-target", help="target: local dir or hub id")
    p.add_argument("--draft", default="weights/testbed-draft", help="draft: local dir or hub id")
    p.add_argument("--videos", default="testbed", help="'testbed' (synthetic, with captions) or a folder of videos")
    p.add_argument("--frames", type=int, default=8, help="frames per video (testbed 8 = 144 video tokens)")
    p.add_argument("--max-new-tokens", type=int, default=64, help="tokens generated per video, at most")
    p.add_argument("--keep", type=_floats, default=[0.1, 0.25, 0.5], help="keep ratios of pruned SD, e.g. 0.1,0.5")
    p.add_argument("--scorers", type=_names, default=["verifier", "uniform", "random", "topk", "similarity"],
                   help="PruneConfig.scorer values of the pruned rows")
    p.add_argument("--stage1-max-share", type=_floats, default=[0.5], dest="stage1_caps",
                   help="also run the verifier scorer with the paper's Stage I rule capped at these shares of the "
                        "budget (PruneConfig(stage1_rule='paper', stage1_max_share=S))")
    p.add_argument("--no-paper", action="store_true",
                   help="skip the verifier rows with the paper's Stage I rule (PruneConfig(stage1_rule='paper'))")
    p.add_argument("--num-draft-tokens", type=int, default=5, help="gamma: drafted tokens per round")
    p.add_argument("--verify", type=_verify_modes, default=["strict", "loose"],
                   help="'strict' = the lossless rows only; 'strict,loose' adds LVSpec's lossy loose rows "
                        "(main row set, first keep ratio, verifier scorer; the strict rows always run as their "
                        "reference)")
    p.add_argument("--relax-ratios", type=_ratios, default=[0.0, 0.3, 0.5, 0.7, 0.9],
                   help="loose sweep: PruneConfig.relax_ratio values")
    p.add_argument("--shift-windows", type=_windows, default=[0, 1, 2], help="loose sweep: shift_window values")
    p.add_argument("--loose-rule", choices=["any", "target_topk"], default="any",
                   help="loose_rule of the sweep (with 'any', one extra target_topk row runs at the defaults)")
    p.add_argument("--no-loose-diagnostics", action="store_true",
                   help="skip the LVSpec diagnostics (strict rejections by word class, visual-relevance AUC)")
    p.add_argument("--samples", type=int, default=300, help="videos in the main row set")
    p.add_argument("--long-frames", type=int, default=32, help="frames of the long-video row set (0 = no long set)")
    p.add_argument("--mid-frames", type=int, default=16,
                   help="frames of an optional middle row set (another point of speedup vs video tokens; 0 = none)")
    p.add_argument("--long-samples", type=int, default=60, help="videos in the long (and middle) row set")
    p.add_argument("--device", default="cpu", help="where both models run, e.g. cuda")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32",
                   help="fp16/bf16 can flip near-tie argmaxes between verification and AR: mismatches in "
                        "float32 only are bugs")
    p.add_argument("--out", type=Path, default=Path("bench-results"),
                   help="output directory (the repository's committed run is in benchmarks/: make bench)")
    p.add_argument("--seed", type=int, default=0, help="selects the testbed videos")
    p.add_argument("--threads", type=int, default=1, help="torch threads (tiny models run fastest on one)")
    p.add_argument("--processor", default=None,
                   help="processor dir/hub id or 'testbed' (unset: testbed's for testbed videos, else the target's)")
    p.add_argument("--prompt", default=DEFAULT_PROMPT, help="the question asked about folder videos")
    p.add_argument("--no-stock", action="store_true", help="skip stock HF assisted generation")
    p.add_argument("--no-self", action="store_true", help="skip self-speculation")
    p.add_argument("--no-attention", action="store_true", help="skip the verifier attention measurement")
    p.add_argument("--note", default=None, help="a sentence printed at the top of RESULTS.md")
    p.add_argument("--analysis", type=Path, default=None, metavar="MARKDOWN",
                   help="a hand-written markdown file inserted after the evidence table (why a claim does not hold)")
    p.add_argument("--report-only", type=Path, default=None, metavar="RESULTS_JSON",
                   help="rewrite RESULTS.md and the plots in --out from an existing results.json; run nothing")
    p.add_argument("--study", choices=["selection"], default=None,
                   help="'selection': the τ-only video-token selection study (bench/study.py) on the testbed, written "
                        "to <out>/selection_study.json and rendered into RESULTS.md by later runs and --report-only")
    args = p.parse_args(argv)
    if args.report_only is None:
        check_sources(args, p)
    return args


def check_sources(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Fail at once, with a hint, on a model or video source that cannot be loaded (before minutes of loading;
    for an unreachable hub id transformers would otherwise retry the Hub for ~30 s)."""
    sources = [("--target", args.target), ("--draft", args.draft)]
    if args.processor not in (None, "testbed"):
        sources.append(("--processor", args.processor))
    for flag, name in sources:
        problem = model_source_problem(name)
        if problem and name == parser.get_default(flag.lstrip("-")):
            problem += " (the default testbed pair is in the repository's weights/: run from the root of a clone)"
        if problem:
            parser.error(f"{flag} {name}: {problem}")
    if args.videos != "testbed" and not Path(args.videos).is_dir():
        parser.error(f"--videos {args.videos}: not a folder of video files (or 'testbed' for synthetic videos)")


def model_source_problem(name: str) -> str | None:
    """Why `name` (a local model dir or a hub id) cannot be loaded, with the fix; None if it can."""
    path = Path(name)
    if path.is_dir():
        if (path / "config.json").is_file():
            return None
        return "this directory has no config.json (a model saved with save_pretrained() is expected)"
    from huggingface_hub import constants, model_info, try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError, RepositoryNotFoundError

    try:
        cached = isinstance(try_to_load_from_cache(name, "config.json"), str)
    except HFValidationError:
        return "no such directory, and not a Hugging Face Hub id (owner/name) either"
    if constants.HF_HUB_OFFLINE:
        return None if cached else ("no such directory, and not in the local Hugging Face cache (HF_HUB_OFFLINE is "
                                    "set, so the Hub is not asked): pass a model directory or download it first")
    try:
        model_info(name, timeout=10)
    except RepositoryNotFoundError:
        return "no such directory, and no such model on the Hugging Face Hub (or it is private: log in first)"
    except Exception as error:  # network errors: one attempt, no retries
        if cached:
            return (f"the Hugging Face Hub is unreachable ({error}); the model is in the local cache: set "
                    "HF_HUB_OFFLINE=1 to use it without the network")
        return (f"no such directory, and the Hugging Face Hub is unreachable ({error}): pass a model directory, or "
                "run where the Hub is reachable")
    return None


def load_model(name: str, device: str, dtype: torch.dtype) -> torch.nn.Module:
    """A video-text-to-text model with sdpa attention (the verifier capture wraps sdpa/eager)."""
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(name, dtype=dtype, attn_implementation="sdpa")
    return model.to(device).eval()


def load_processor(args: argparse.Namespace) -> Any:
    if args.processor == "testbed" or (args.processor is None and args.videos == "testbed"):
        from specvlm_hf.testbed.vocab import build_processor

        return build_processor()
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(args.processor or args.target)


def load_inputs(args: argparse.Namespace, processor: Any, video_token_id: int, count: int, frames: int
                ) -> list[BenchInput]:
    if args.videos == "testbed":
        return testbed_inputs(processor, count, frames, video_token_id, seed=args.seed)
    return folder_inputs(processor, Path(args.videos), count, frames, args.prompt, video_token_id)


def describe_model(name: str, model: torch.nn.Module) -> dict[str, Any]:
    """Size facts of a loaded model, and its model card when it is a local dir that has one."""
    text = model.config.get_text_config()
    card = Path(name) / "README.md"
    return {
        "name": name,
        "parameters": sum(p.numel() for p in model.parameters()),
        "layers": text.num_hidden_layers,
        "hidden_size": text.hidden_size,
        "vocab_size": text.vocab_size,
        "model_card": str(card) if card.is_file() else None,
    }


def set_json(result: SetResult) -> dict[str, Any]:
    return {"samples": result.samples, "cost": result.cost, "errors": result.errors, "mismatches": result.mismatches}


def finalise(results: dict[str, Any]) -> dict[str, Any]:
    """Summaries, claims and targets, derived from the raw samples only (so --report-only can recompute them)."""
    cfg = results["config"]
    for data in results["sets"].values():
        data["summary"] = summary.summarise_set(data["samples"], results["methods"], cfg["keep"], scorer_labels(cfg))
    main_summary = results["sets"]["main"]["summary"]
    long_summary = results["sets"].get("long", {}).get("summary")
    results["claims"] = claims.paper_claims(main_summary, long_summary, cfg["keep"])
    results["targets"] = claims.issue_targets(main_summary, cfg["keep"]) + claims.loose_targets(main_summary)
    return results


def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Load the models and inputs and run every row set; returns the raw results (the JSON before `finalise`)."""
    started = time.perf_counter()
    set_threads(args.threads)
    dtype = DTYPES[args.dtype]
    target = load_model(args.target, args.device, dtype)
    draft = load_model(args.draft, args.device, dtype)
    processor = load_processor(args)
    video_token_id = target.config.video_token_id
    methods = build_methods(args.keep, args.scorers, stock=not args.no_stock, self_spec=not args.no_self,
                            stage1_caps=args.stage1_caps, paper=not args.no_paper)
    loose = "loose" in args.verify
    # The loose rows run on the main row set only, at the first keep ratio with the verifier scorer.
    loose_methods = build_loose_methods(args.keep[0], args.relax_ratios, args.shift_windows, args.loose_rule) \
        if loose else []
    tokenizer = getattr(processor, "tokenizer", processor)
    settings = RunSettings(args.max_new_tokens, args.num_draft_tokens, attention=not args.no_attention,
                           tokenizer=tokenizer)
    main_settings = RunSettings(args.max_new_tokens, args.num_draft_tokens, attention=not args.no_attention,
                                diagnostics_keep=args.keep[0] if loose and not args.no_loose_diagnostics else None,
                                tokenizer=tokenizer)
    names = [m.name for m in [*methods, *loose_methods] if m.name != AR_PREFILL]

    row_sets = [("main", args.samples, args.frames)]
    for set_name, frames in (("mid", args.mid_frames), ("long", args.long_frames)):
        if frames and args.long_samples:
            row_sets.append((set_name, args.long_samples, frames))
    sets = {}
    for set_name, count, frames in row_sets:
        items = [to_device(i, target.device, dtype) for i in load_inputs(args, processor, video_token_id, count, frames)]
        with warnings.catch_warnings():
            for message in EXPECTED_WARNINGS:
                warnings.filterwarnings("ignore", message=message, category=UserWarning)
            if set_name == "main":
                result = run_set(set_name, items, [*methods, *loose_methods], target, draft, main_settings)
            else:
                result = run_set(set_name, items, methods, target, draft, settings)
        annotate_captions(result, getattr(processor, "tokenizer", processor))
        sets[set_name] = set_json(result)

    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    results = {
        "schema_version": SCHEMA_VERSION,
        "command": command,
        "finished": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "wall_s": time.perf_counter() - started,
        "config": config,
        "note": args.note,
        "environment": report.environment(args.threads),
        "models": {"target": describe_model(args.target, target), "draft": describe_model(args.draft, draft)},
        "methods": names,
        "sets": sets,
        "mismatches": [m for s in sets.values() for m in s["mismatches"]],
        "errors": {f"{n}/{m}": e for n, s in sets.items() for m, e in s["errors"].items()},
    }
    return results


def rounded(value: Any, digits: int = 6) -> Any:
    """`value` with every float rounded to `digits` significant digits (keeps results.json small; timings are
    microsecond-noisy anyway)."""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}")
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v, digits) for v in value]
    return value


def write_outputs(results: dict[str, Any], out: Path, plots: bool = True) -> None:
    """results.json (compact: one line), RESULTS.md and (with `plots`) the plots."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(rounded(results), separators=(",", ":")) + "\n")
    markdown = report.render_markdown(results)
    if plots:
        report.write_plots(results, out)
    else:  # no links to images that were not drawn
        markdown = re.sub(r"!\[[^\]]*\]\([^)]*\.png\)", "(plot skipped: matplotlib is not installed)", markdown)
    (out / "RESULTS.md").write_text(markdown)


def matplotlib_available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the process exit code (1 if any lossless speculative output differed from AR;
    lossy loose rows never count, the loose relax 0 / shift 0 row does)."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.study == "selection":
        from . import study

        return study.main(args, "python -m specvlm_hf.bench " + " ".join(argv))
    plots = matplotlib_available()
    if not plots:  # said before the run, not as a crash after it
        print("matplotlib is not installed: the plots will be skipped (pip install 'specvlm-hf[bench]' adds it).",
              file=sys.stderr)
    if args.report_only is not None:
        results = json.loads(args.report_only.read_text())
        if args.note is not None:
            results["note"] = args.note
        results["rendered_by"] = "python -m specvlm_hf.bench " + " ".join(argv)
    else:
        results = run(args, "python -m specvlm_hf.bench " + " ".join(argv))
    if args.analysis is not None:
        results["analysis"] = args.analysis.read_text()
    write_outputs(finalise(results), args.out, plots=plots)
    for row in results["claims"] + results["targets"]:
        print(f"[{row['id']}] {row['verdict']:>13}: {row['evidence']}")
    print(f"wrote {args.out / 'RESULTS.md'}, {args.out / 'results.json'}{' and the plots' if plots else ''}")
    if results["mismatches"]:
        print(f"\nFAILED: {len(results['mismatches'])} speculative output(s) differ from AR (see results.json "
              f"'mismatches').", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

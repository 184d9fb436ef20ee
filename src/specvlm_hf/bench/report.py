"""RESULTS.md and the PNG plots, written from the JSON results (never from live objects: the report is reproducible
from results.json alone)."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from . import claims as claims_module
from . import summary as definitions
from .methods import AR, FULL, STOCK, is_loose_name, pruned_name, scorer_labels
from .study import load_study
from .summary import selection_study_summary

PLOTS = {
    "tau_vs_keep": "tau_vs_keep.png",
    "speedup_vs_keep": "speedup_vs_keep.png",
    "speedup_vs_video_tokens": "speedup_vs_video_tokens.png",
}
LOOSE_PLOT = "loose_fidelity_vs_speedup.png"


# -- environment -----------------------------------------------------------------------------------------------------


def environment(threads: int) -> dict[str, Any]:
    """Machine and library versions the run used."""
    import torch
    import transformers

    import specvlm_hf

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": threads,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "specvlm_hf": specvlm_hf.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


# -- formatting ------------------------------------------------------------------------------------------------------


def _num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _spread(s: dict | None, digits: int = 2, suffix: str = "") -> str:
    if not s:
        return "–"
    return f"{s['median']:.{digits}f}{suffix} [{s['min']:.{digits}f}, {s['max']:.{digits}f}]"


def _method_label(name: str, method: dict[str, Any]) -> tuple[str, str]:
    """(keep, scorer) columns of a method name."""
    if name == AR:
        return "–", "–"
    if name == STOCK:
        return "1 (draft blind)", "–"
    if name == FULL:
        return "1", "–"
    _, scorer, keep = name.split("-", 2)
    return keep, scorer


def methods_table(s: dict[str, Any]) -> str:
    """The headline table of one row set."""
    head = ("| method | keep | scorer | video tokens seen by draft | τ mean (median) | accepted/round | acceptance | "
            "decode speedup median [min, max] | end-to-end speedup median [min, max] | AR time median [s] | "
            "output = AR |\n|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for name, m in s["methods"].items():
        if not m["samples"] or is_loose_name(name):  # the loose rows have their own section
            continue
        keep, scorer = _method_label(name, m)
        tau = m.get("tau")
        kept = f"{m['kept_video_tokens']:.0f}/{m['video_tokens']:.0f}" if "kept_video_tokens" in m else "–"
        rows.append(
            f"| `{name}` | {keep} | {scorer} | {kept} | "
            f"{_num(tau and tau['mean'])} ({_num(tau and tau['median'])}) | {_num(m.get('accepted_per_round'))} | "
            f"{_num(m.get('acceptance_rate') and 100 * m['acceptance_rate'], 1)}{'%' if 'acceptance_rate' in m else ''} | "
            f"{_spread(m.get('speedup_decode'), suffix='×')} | {_spread(m.get('speedup_e2e'), suffix='×')} | "
            f"{_num(m['seconds']['median'], 3) if name == AR else ''} | "
            f"{'yes' if m['all_match_ar'] else '**NO**'} ({m['samples']}) |"
        )
    return "\n".join([head, *rows])


def time_split_table(s: dict[str, Any]) -> str:
    """Mean SpecStats seconds per sample, plus the overhead and capture shares."""
    head = ("| method | target prefill | capture | draft prefill | draft | verify | overhead | overhead / draft | "
            "capture / target prefill | accept histogram (rounds accepting 0, 1, … drafts) |\n"
            "|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for name, m in s["methods"].items():
        if "mean_times_s" not in m or is_loose_name(name):
            continue
        t = m["mean_times_s"]
        rows.append(
            f"| `{name}` | " + " | ".join(f"{1e3 * t[k]:.1f}" for k in definitions.TIME_FIELDS)
            + f" | {m['overhead_share_of_draft']:.1%} | {m['capture_share_of_prefill']:.1%} | "
            f"{m['accept_histogram']} |"
        )
    return "\n".join([head + "\n" + "| *(ms, mean per sample)* |" + " |" * 9, *rows])


def comparisons_table(s: dict[str, Any]) -> str:
    """Paired bootstrap intervals."""
    head = ("| comparison | metric | estimate | 95% CI | n |\n|---|---|---|---|---|")
    rows = []
    for c in s["comparisons"]:
        op = "−" if c["kind"] == "diff" else "/"
        rows.append(f"| `{c['a']}` {op} `{c['b']}` | {c['metric']} | {c['estimate']:.3f} | "
                    f"[{c['ci_low']:.3f}, {c['ci_high']:.3f}] | {c['n']} |")
    return "\n".join([head, *rows])


def attention_line(s: dict[str, Any]) -> str:
    a = s.get("attention", {})
    if not a:
        return "Verifier attention: not measured."
    parts = [f"top 10% of video tokens hold {_spread(a['top10_share'], 3)} of the verifier's video attention"]
    if "object_attention_share" in a:
        parts.append(f"object tokens hold {_spread(a['object_attention_share'], 3)} of it while being "
                     f"{_spread(a['object_token_share'], 3)} of the video tokens")
    return "Verifier attention (median [min, max] over samples): " + "; ".join(parts) + "."


def claims_table(rows: list[dict[str, str]]) -> str:
    head = "| | claim | verdict | our numbers |\n|---|---|---|---|"
    body = [f"| {r['id']} | {r['claim']} | **{r['verdict']}** | {r['evidence']} |" for r in rows]
    return "\n".join([head, *body])


def set_section(name: str, data: dict[str, Any]) -> str:
    s = data["summary"]
    cost = data.get("cost", {})
    tokens = data["samples"][0]["video_tokens"] if data["samples"] else 0
    exact = s.get("ar_caption_exact_match")
    accuracy = ("" if exact is None else
                f"\nThe target's greedy caption equals the ground-truth caption on {exact:.1%} of these videos.")
    errors = "".join(f"\n\n`{m}` was skipped after it raised: `{e}`" for m, e in data.get("errors", {}).items())
    return f"""## Row set `{name}`: {len(data['samples'])} videos, {tokens} video tokens each

Decode-step cost (1 token, KV cache, after this set's first prefill, median of 40): target
{_num(cost.get('target_ms'))} ms, draft {_num(cost.get('draft_ms'))} ms, **ratio {_num(cost.get('ratio'))}×**.
{attention_line(s)}{accuracy}{errors}

{methods_table(s)}

Time split (SpecStats):

{time_split_table(s)}

Paired bootstrap over videos ({definitions.BOOTSTRAP_RESAMPLES} resamples; `−` = difference of means, `/` = ratio of
means):

{comparisons_table(s)}
"""


def _ci_cell(c: dict | None, digits: int = 3) -> str:
    return "–" if not c else f"{c['estimate']:.{digits}f} [{c['ci_low']:.{digits}f}, {c['ci_high']:.{digits}f}]"


def _share(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}%"


def loose_table(loose: dict[str, Any], default: str | None) -> str:
    """One row per setting: speed vs the strict row, fidelity vs ground truth and vs AR."""
    head = ("| row | relax | shift | rule | τ | τ / strict [95% CI] | decode speedup (median) | "
            "speedup / strict [95% CI] | fact accuracy | exact match | retention: facts [95% CI] | "
            "retention: exact match [95% CI] | AR agreement (token) | identical to AR | relaxed / shifted per video | "
            "first divergence at a fact word |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for name, r in loose["rows"].items():
        settings = r.get("settings")
        label = f"`{name}`" + (" **(default)**" if name == default else "")
        if name == loose["strict"]:
            label += " (strict)"
        relax, shift, rule = ((f"{settings['relax_ratio']:g}", str(settings['shift_window']), settings["loose_rule"])
                              if settings else ("–", "–", "–"))
        first = r.get("first_divergence") or {}
        diverged = (f"{_share(first.get('fact_share'))} of {first['diverging']}" if first.get("diverging") else "–")
        relaxed = (f"{r['relaxed_per_video']:.2f} / {r['shifted_per_video']:.2f} "
                   f"({round(r['shifted_per_video'] * r['samples'])} shifted in all)" if settings and
                   r.get("relaxed_per_video") is not None else "–")
        rows.append(
            f"| {label} | {relax} | {shift} | {rule} | {_num(r.get('tau'))} | {_ci_cell(r.get('tau_vs_strict'))} | "
            f"{_num(r.get('speedup_decode'))}{'×' if r.get('speedup_decode') else ''} | "
            f"{_ci_cell(r.get('speedup_vs_strict'))} | {_num(r['fact_accuracy'], 3)} | {_num(r['exact_match'], 3)} | "
            f"{_ci_cell(r.get('retention_fact'))} | {_ci_cell(r.get('retention_exact'))} | "
            f"{_num(r['ar_agreement'], 3)} | {_share(r['identical'])} | {relaxed} | {diverged} |"
        )
    return "\n".join([head, *rows])


def diagnostics_lines(d: dict[str, Any], strict: str) -> str:
    """The two LVSpec diagnostics as a short list."""
    shares = d["rejection_shares"]
    source = d["class_source"]
    mean_own, mean_pred = d["mean_relevance_own"], d["mean_relevance_predicting"]
    return f"""Measured on the same {d['videos']} videos (`bench/measure.py`). Word classes of AR's output tokens:
**fact** = a slot of the caption grammar (count, colour, shape, row, col, motion phrase incl. "moves"/"stays"),
**structure** = not a slot but decided by the video's object count ("object"/"objects" and the token after an
object sentence's "." — the next object's article or the end of the caption), **filler** = the rest (predictable from
the prompt). Classes come from the ground-truth slot tags (`caption_words`) where AR's caption equals the ground truth
({source['gt']} videos) and from the slot vocabulary elsewhere ({source['vocab']} videos; the two agree on exact
captions); {source['unaligned']} videos could not be aligned.

- **(a) What the strict rule rejects.** Of the {d['rejections']} drafts `{strict}` rejected (replayed through the owned
  loop with relax 0 / shift 0; replay output = AR on {d['replay_matches_ar']}/{d['videos']} videos, accept histogram
  {'equal to' if d['replay_histogram_equals_strict'] else '**different from**'} the strict row's), the target's token
  was a **fact** word in {_share(shares['fact'])}, a **structure** token in {_share(shares['structure'])} and
  **filler** in {_share(shares['filler'])}; counting only the slot vocabulary (without "moves"/"stays") as facts:
  {_share(d['rejection_slot_vocabulary_share'])}.
- **(b) Does visual relevance find the filler?** `verification.visual_relevance` (top-10 mean cosine similarity to the
  prompt's video-token hidden states, target last layer) of AR's output tokens ({d['tokens']['fact']} fact,
  {d['tokens']['filler']} filler, {d['tokens']['structure']} structure tokens): AUC fact vs filler
  **{_num(d['auc_own'], 3)}** at the token's own position (what the loose rule scores) and
  **{_num(d['auc_predicting'], 3)}** one position earlier (the hidden state that predicts the token); 0.5 = no
  separation, below 0.5 = facts look *less* visual than filler. With structure tokens counted as facts:
  {_num(d['auc_own_fact_and_structure'], 3)} / {_num(d['auc_predicting_fact_and_structure'], 3)}. Mean relevance
  (own position) fact {_num(mean_own['fact'], 3)}, structure {_num(mean_own['structure'], 3)}, filler
  {_num(mean_own['filler'], 3)}; predicting position {_num(mean_pred['fact'], 3)} / {_num(mean_pred['structure'], 3)} /
  {_num(mean_pred['filler'], 3)}."""


def loose_section(results: dict[str, Any]) -> str:
    """The "Loose verification (LVSpec)" section (empty when the run had no loose rows)."""
    data = results["sets"].get("main")
    loose = data and data["summary"].get("loose")
    if not loose:
        return ""
    cfg = results["config"]
    default = claims_module.default_loose_row(loose)
    strict = loose["strict"]
    videos = loose["rows"][AR]["samples"]
    exact_rows = [(n, r) for n, r in loose["rows"].items() if r.get("settings")
                  and r["settings"]["relax_ratio"] == 0 and r["settings"]["shift_window"] == 0]
    exact = "; ".join(f"`{n}` output = AR on {videos if r['identical'] == 1 else round(r['identical'] * videos)}/"
                      f"{videos} videos ({'as required' if r['identical'] == 1 else '**MISMATCH: counted as a failure**'})"
                      for n, r in exact_rows) or "no relax 0 / shift 0 row ran"
    target = next((r for r in results.get("targets", []) if r["id"] == "T4"), None)
    target_line = (f"**Target (reported, not asserted): {target['verdict']}.** {target['id']}: {target['claim']}. {target['evidence']}."
                   if target else "")
    diagnostics = data["summary"].get("lvspec_diagnostics")
    plot = f"\n![loose fidelity vs speedup]({LOOSE_PLOT})\n"
    return f"""## Loose verification (LVSpec)

`PruneConfig(verify="loose")` is **lossy by design**: the least visually relevant drafted tokens of each block may
differ from the target's choice (`relax_ratio`), and a drafted word inserted before the target's word (or swapped
with it) may be accepted when the draft re-synchronises (`shift_window`). The loose rows run on the main row set ({videos} videos) at keep {cfg['keep'][0]:g} with
the verifier scorer, so their strict twin is `{strict}` (same pruning, same draft); other loose settings at their
defaults (`relevance_top_n`=10, `loose_top_k`=5). They do not count as mismatches, except relax 0 / shift 0, which
must equal strict and AR exactly: {exact}.

Fidelity against the ground-truth captions: **fact accuracy** = share of the ground-truth facts (count, and per object
colour, shape, row, col, motion; objects matched by order, `testbed.synthetic.caption_facts`) that the caption states
correctly; **exact match** = caption equals the ground truth; **retention** = the row's mean / AR's mean over the same
videos (paired bootstrap). Against AR: **AR agreement** = position-wise equal tokens / max(length of AR, length of the
row), mean over videos; **identical to AR** = share of outputs equal to AR's. Speed: τ and the median decode-only
speedup over AR as in the rest of this report; **/ strict** = ratio of means to `{strict}` (paired bootstrap).
**relaxed / shifted** = `SpecStats.relaxed_accepted` / `shift_accepted` per video. **first divergence at a fact
word** = of the outputs that differ from AR, the share whose first differing token is a fact word in AR's output.

{loose_table(loose, default)}

{target_line}

{'### Why: two diagnostics' + chr(10) + chr(10) + diagnostics_lines(diagnostics, strict) if diagnostics else ''}
{plot}
"""


def models_line(results: dict[str, Any]) -> str:
    """Target and draft: name, size, model card link."""
    parts = []
    for role, m in results.get("models", {}).items():
        card = f", [model card](../{m['model_card']})" if m.get("model_card") and not Path(m["model_card"]).is_absolute() else ""
        parts.append(f"**{role}** `{m['name']}` ({m['parameters'] / 1e6:.2f} M parameters, {m['layers']} layer{'s' if m['layers'] != 1 else ''}, "
                     f"hidden {m['hidden_size']}{card})")
    if not parts:
        cfg = results["config"]
        return f"**target** `{cfg['target']}`; **draft** `{cfg['draft']}`"
    return "; ".join(parts)


def headline(results: dict[str, Any]) -> str:
    """One paragraph: the main set's τ and decode speedups at the smallest keep ratio, beside the cost ratio."""
    data = results["sets"].get("main")
    if not data or not data["samples"]:
        return ""
    s, keep = data["summary"], results["config"]["keep"][0]

    def tau(name: str) -> str:
        return _num(_median(s, name, "tau"))

    def speed(name: str) -> str:
        return _num(_median(s, name, "speedup_decode"))

    verifier = pruned_name(keep, "verifier")
    others = ", ".join(f"{scorer} {tau(pruned_name(keep, scorer))}" for scorer in scorer_labels(results["config"])
                       if scorer != "verifier")
    return (f"**Headline** (main set, {data['samples'][0]['video_tokens']} video tokens, {len(data['samples'])} "
            f"videos): at keep {keep:g} the verifier-pruned draft reaches τ = {tau(verifier)} tokens per verification "
            f"(full video {tau(FULL)}; {others}; stock HF assisted {tau(STOCK)}), a median decode-only speedup of "
            f"{speed(verifier)}× over AR (full-video SD {speed(FULL)}×, stock HF assisted {speed(STOCK)}×, "
            f"self-speculation {speed(pruned_name(keep, 'verifier', True))}×), with a measured target/draft "
            f"decode-step cost ratio of {_num(data['cost'].get('ratio'))}×.")


def outside_timers(results: dict[str, Any]) -> str:
    """"; the part of SD's wall time outside every SpecStats timer is a median ~X ms at N video tokens and ..." for
    the verifier-pruned row at the first keep ratio, per row set (empty when nothing was measured)."""
    import statistics

    name = pruned_name(results["config"]["keep"][0], "verifier")
    parts = []
    for data in sorted((d for d in results["sets"].values() if d["samples"]), key=lambda d: d["samples"][0]["video_tokens"]):
        outside = [s["methods"][name]["seconds"] - sum(s["methods"][name]["stats"][k] for k in definitions.TIME_FIELDS
                                                       if k != "capture_s")
                   for s in data["samples"] if name in s["methods"] and s["methods"][name]["stats"]]
        if outside:
            parts.append(f"~{1e3 * statistics.median(outside):.0f} ms at {data['samples'][0]['video_tokens']}")
    if not parts:
        return ""
    return ("; the part of SD's wall time outside every SpecStats timer is a median " + ", ".join(parts)
            + " video tokens here")


def scorer_legend(cfg: dict[str, Any]) -> str:
    """What the verifier labels mean in this run (runs before issue 15 ran the paper's rule as `verifier`)."""
    if "no_paper" not in cfg:
        return ("`verifier` = the paper's Stage I rule, the default before issue 15; `verifier/capS` = it with "
                "`PruneConfig(stage1_max_share=S)`: Stage I takes at most S of the budget, Stage II the rest")
    return ("`verifier` = `PruneConfig(stage1_rule='adaptive')`, the candidate default; `verifier/paper` = "
            "`PruneConfig(stage1_rule='paper')`, SpecVLM's rule and the current default; `verifier/capS` = the paper's rule with "
            "`stage1_max_share=S`: Stage I takes at most S of the budget, Stage II the rest; `similarity` = the "
            "attention-free scorer")


def render_markdown(results: dict[str, Any]) -> str:
    """The whole RESULTS.md."""
    cfg, env = results["config"], results["environment"]
    mismatches = results["mismatches"]
    lossy = ("" if not results["sets"].get("main", {}).get("summary", {}).get("loose") else
             " (The lossy loose rows are excluded: they may differ by design; see the LVSpec section.)")
    status = ("**Every lossless speculative output was identical to AR, token for token.**" + lossy
              if not mismatches else
              f"**{len(mismatches)} lossless speculative output(s) DIFFERED from AR** — see `mismatches` in "
              "results.json.")
    sets = "\n".join(set_section(n, d) for n, d in results["sets"].items())
    plots = "\n\n".join(f"![{k}]({v})" for k, v in PLOTS.items())
    note = f"\n> {results['note']}\n" if results.get("note") else ""
    analysis = f"{results['analysis'].strip()}\n\n" if results.get("analysis") else ""
    study = load_study(cfg["out"]) if cfg.get("out") else None
    study_text = f"{selection_study_section(selection_study_summary(study), study)}\n" if study else ""
    loose_definition = ("- Loose (LVSpec) rows: see the definitions in their section.\n"
                        if results["sets"].get("main", {}).get("summary", {}).get("loose") else "")
    rendered = f"; this report re-rendered from its results.json by `{results['rendered_by']}`" \
        if results.get("rendered_by") else ""
    return f"""# specvlm-hf benchmark results

Generated by `{results['command']}` on {results['finished']} (UTC){rendered}.
{note}
- {models_line(results)} ({cfg['dtype']}, {cfg['device']}); videos: `{cfg['videos']}`.
- Greedy, batch 1, γ = {cfg['num_draft_tokens']} drafted tokens per round, max_new_tokens = {cfg['max_new_tokens']};
  keep ratios {cfg['keep']}, scorers {scorer_labels(cfg)} ({scorer_legend(cfg)}); self-speculation
  (the target drafts for itself on its pruned prompt) at keep {cfg['keep'][0]} (`self-…`).
- Every method runs on the same inputs, interleaved per video (the order rotates per video); one warm-up video first.
- Machine: {env['cpu']}, {env['cpu_count']} cores, torch threads {env['torch_threads']}{', GPU ' + env['cuda'] if env['cuda'] else ''};
  Python {env['python']}, torch {env['torch']}, transformers {env['transformers']}, specvlm-hf {env['specvlm_hf']}
  ({env['platform']}).
- Run time: {results['wall_s'] / 60:.1f} min.

{status}

{headline(results)}

## Evidence: the paper's claims

{claims_table(results['claims'])}

{analysis}## The issue's targets (reported, not asserted)

{claims_table(results['targets']) if results['targets'] else 'not measured'}

{loose_section(results)}{study_text}{sets}
## Plots

{plots}

## Definitions

- **τ** = `SpecStats.mean_accepted_length` = (new tokens − 1) / verification rounds: tokens per target verification
  forward, bonus token included (docs/design.md §6), mean over videos. **accepted/round** = accepted drafts per round,
  bonus excluded (what the paper's code printed). **acceptance** = accepted / drafted, pooled over videos.
  For `stock-assisted` (no SpecStats) the τ column is new tokens / target forwards (its prefill is fused with the
  first verification).
- **End-to-end time** = wall time of the `generate` call. **Decode-only time** = end-to-end minus the prefills.
  *AR first token* = wall time of `generate(max_new_tokens=1)` on the same video, run interleaved with the methods
  (generate's set-up + the target prefill + the first token). AR: end-to-end − AR first token. Speculative methods:
  end-to-end − AR first token − `SpecStats.draft_prefill_s`. The same measured set-up and target prefill is removed
  from every method because generate's set-up grows with the number of video tokens (M-RoPE position ids,
  multimodal bookkeeping{outside_timers(results)}); what SD adds to its own prefill (the
  attention capture, its wrapper's set-up) stays in its decode time, which is conservative for SD.
  `stock-assisted`: end-to-end − AR first token.
- **Speedup** = AR time / method time per video; median with [min, max] over videos.
- Bootstrap: paired over videos (the same videos for both methods), percentile 95% intervals.
- Verifier attention = `specvlm_hf.capture.video_attention_scores` (the scores pruning uses): query rows after the
  video, mean over heads, queries and layers, renormalised over the video tokens.
- Decode-step cost: median of single-token forwards with a KV cache after the video prefill, target and draft
  interleaved.
{loose_definition}"""


# -- plots -----------------------------------------------------------------------------------------------------------


def _median(summary_: dict, method: str, metric: str) -> float | None:
    m = summary_["methods"].get(method)
    value = m.get(metric) if m and m.get("samples") else None
    return None if value is None else (value["mean"] if metric == "tau" else value["median"])


def _keep_curve(summary_: dict, keeps: list[float], scorer: str, metric: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for keep in [*sorted(keeps), 1.0]:
        value = _median(summary_, FULL if keep == 1.0 else pruned_name(keep, scorer), metric)
        if value is not None:
            xs.append(keep)
            ys.append(value)
    return xs, ys


def _plot_vs_keep(results: dict, metric: str, ylabel: str, path: Path) -> None:
    import matplotlib.pyplot as plt

    cfg = results["config"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for set_name, style in (("main", "-o"), ("long", "--s")):
        data = results["sets"].get(set_name)
        if not data or not data["samples"]:
            continue
        tokens = data["samples"][0]["video_tokens"]
        for colour, scorer in enumerate(scorer_labels(cfg)):
            xs, ys = _keep_curve(data["summary"], cfg["keep"], scorer, metric)
            ax.plot(xs, ys, style, color=f"C{colour}", label=f"{scorer} ({tokens} tok)")
        stock = _median(data["summary"], STOCK, metric)
        if stock is not None:
            ax.axhline(stock, color="grey", linestyle=":" if set_name == "main" else "-.", label=f"stock HF ({tokens} tok)")
        self_name = pruned_name(cfg["keep"][0], "verifier", True)
        value = _median(data["summary"], self_name, metric)
        if value is not None:
            ax.plot([cfg["keep"][0]], [value], "*" if set_name == "main" else "P", color="black", markersize=10,
                    label=f"self-speculation ({tokens} tok)")
    if metric != "tau":
        ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ticks = sorted({*cfg["keep"], 1.0})
    ax.set_xticks(ticks, [f"{k:g}" for k in ticks])
    ax.minorticks_off()
    ax.set_xlabel("keep ratio (share of video tokens the draft sees; 1 = full-video SD)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_vs_tokens(results: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    cfg = results["config"]
    keep = cfg["keep"][0]
    methods = [FULL, pruned_name(keep, "verifier"), pruned_name(keep, "verifier", True), STOCK]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    sets = [d for d in results["sets"].values() if d["samples"]]
    sets.sort(key=lambda d: d["samples"][0]["video_tokens"])
    for colour, method in enumerate(methods):
        for metric, style in (("speedup_decode", "-o"), ("speedup_e2e", ":x")):
            points = [(d["samples"][0]["video_tokens"], _median(d["summary"], method, metric)) for d in sets]
            points = [(x, y) for x, y in points if y is not None]
            if points:
                label = f"{method} ({'decode' if metric == 'speedup_decode' else 'end-to-end'})"
                ax.plot(*zip(*points), style, color=f"C{colour}", label=label)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("video tokens per sample")
    ax.set_ylabel("median speedup over AR")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_loose(results: dict, path: Path) -> bool:
    """Retention vs decode speedup relative to strict, one labelled point per loose setting (False: no loose rows)."""
    import matplotlib.pyplot as plt

    loose = results["sets"].get("main", {}).get("summary", {}).get("loose")
    if not loose:
        return False
    default = claims_module.default_loose_row(loose)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    for ax, x_key, xlabel in ((axes[0], "speedup_vs_strict", "decode speedup / strict (ratio of means)"),
                              (axes[1], "tau_vs_strict", "τ / strict τ")):
        # One label per relax ratio and rule (the shift windows are told apart by colour), at its rightmost point.
        labels: dict[tuple[str, float], list[tuple[float, float, int]]] = {}
        for name, row in loose["rows"].items():
            settings, x = row.get("settings"), row.get(x_key)
            y = row.get("retention_fact")
            if not settings or not x or not y:
                continue
            colour = f"C{settings['shift_window'] % 10}" if settings["loose_rule"] == "any" else "black"
            marker = "*" if name == default else ("s" if settings["loose_rule"] != "any" else "o")
            ax.errorbar(x["estimate"], y["estimate"], xerr=[[x["estimate"] - x["ci_low"]], [x["ci_high"] - x["estimate"]]],
                        yerr=[[y["estimate"] - y["ci_low"]], [y["ci_high"] - y["estimate"]]], fmt=marker,
                        color=colour, markersize=12 if name == default else 6, elinewidth=0.6, capsize=0)
            labels.setdefault((settings["loose_rule"], settings["relax_ratio"]), []).append(
                (x["estimate"], y["estimate"], settings["shift_window"]))
        for (rule, relax), points in labels.items():
            x, y, _ = max(points)
            windows = ",".join(str(w) for *_, w in sorted(points, key=lambda p: p[2]))
            ax.annotate(f"{'topk ' if rule != 'any' else ''}r{relax:g} w{windows}", (x, y), fontsize=7, xytext=(5, 4),
                        textcoords="offset points")
        ax.plot([1.0], [1.0], "D", color="grey", label="strict (= AR)")
        ax.axhline(claims_module.LOOSE_RETENTION, color="red", linestyle=":", linewidth=0.8,
                   label=f"retention {claims_module.LOOSE_RETENTION:.0%}")
        if x_key == "tau_vs_strict":
            ax.axvline(claims_module.LOOSE_TAU_RATIO, color="red", linestyle="--", linewidth=0.8,
                       label=f"τ {claims_module.LOOSE_TAU_RATIO}× strict")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("retention: fact accuracy / AR's")
        ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], marker="o", linestyle="", color=f"C{w}", label=f"shift window {w}")
               for w in sorted({r["settings"]["shift_window"] for r in loose["rows"].values() if r.get("settings")})]
    handles.append(plt.Line2D([], [], marker="*", linestyle="", color="grey", markersize=12, label="default (r0.7 w1)"))
    handles.append(plt.Line2D([], [], marker="s", linestyle="", color="black", label="loose_rule target_topk"))
    axes[0].legend(handles=handles + axes[1].get_legend_handles_labels()[0], fontsize=7)
    fig.suptitle(f"LVSpec loose verification: fidelity vs speed (keep {results['config']['keep'][0]:g}, verifier "
                 "scorer; 95% CIs)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def write_plots(results: dict[str, Any], out: Path) -> None:
    """τ vs keep per scorer, decode speedup vs keep, speedup vs number of video tokens, and (with loose rows) the
    loose rows' fidelity vs speed."""
    import matplotlib

    matplotlib.use("Agg")
    _plot_loose(results, out / LOOSE_PLOT)
    _plot_vs_keep(results, "tau", "τ (tokens per verification, bonus incl.; mean)", out / PLOTS["tau_vs_keep"])
    _plot_vs_keep(results, "speedup_decode", "decode-only speedup over AR (median)", out / PLOTS["speedup_vs_keep"])
    _plot_vs_tokens(results, out / PLOTS["speedup_vs_video_tokens"])


# -- the selection study (issue 15) -----------------------------------------------------------------------------------


def _study_cell(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return "–"
    full = cell["vs_full"]
    parts = [f"**{full['estimate']:.3f}** [{full['ci_low']:.3f}, {full['ci_high']:.3f}]"]
    for baseline, letter in (("uniform", "U"), ("random", "R")):
        c = cell.get(f"vs_{baseline}")
        if c is not None:
            mark = " ▼" if c["ci_high"] < 0 else (" ▲" if c["ci_low"] > 0 else "")
            parts.append(f"{letter} {c['estimate']:+.3f} [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}]{mark}")
    return "<br>".join(parts)


def study_table(data: dict[str, Any], rules: list[dict[str, Any]], keeps: list[float], default: str) -> str:
    """One row set: rule x keep -> τ / full-video τ [CI], τ − uniform and τ − random [CI]."""
    head = ("| rule | idea | " + " | ".join(f"keep {k:g}" for k in keeps) + " |\n|---|---|"
            + "---|" * len(keeps))
    body = []
    for rule in rules:
        row = data["rows"].get(rule["name"])
        if row is None:
            continue
        label = f"**`{rule['name']}`** (default)" if rule["name"] == default else f"`{rule['name']}`"
        videos = min(cell["videos"] for cell in row.values())
        if videos < data["videos"]:
            label += f" (first {videos} videos)"
        body.append(f"| {label} | {rule['idea']} | " + " | ".join(_study_cell(row.get(f"{k:g}")) for k in keeps)
                    + " |")
    return "\n".join([head, *body])


def sources_table(sources: dict[str, Any]) -> str:
    """The attention sources: τ / full with the default rule, and how each ranks the object tokens."""
    head = ("| attention source | τ / full [95% CI] | top-10% share of the mass | object tokens among the top 5% / "
            "10% | mass in the first / last temporal group |\n|---|---|---|---|---|")
    body = []
    for name, row in sources["rows"].items():
        c = row.get("vs_full")
        run = f"{c['estimate']:.3f} [{c['ci_low']:.3f}, {c['ci_high']:.3f}]" if c else "(not run)"
        body.append(f"| `{name}` | {run} | "
                    f"{row['top10_share']:.3f} | {row['object_precision_top5']:.2f} / {row['object_precision_top10']:.2f}"
                    f" | {row['first_group_mass']:.2f} / {row['last_group_mass']:.2f} |")
    return "\n".join([head, *body])


def selection_study_section(summary_: dict[str, Any], study: dict[str, Any] | None = None) -> str:
    """RESULTS.md's "Selection study" section from `summary.selection_study_summary` (and the raw study, for its
    command and date)."""
    default, keeps = summary_["default_rule"], summary_["keeps"]
    rules = summary_["rules"]
    described = "\n".join(f"- `{r['name']}` ({r['idea']}): {r['description']}" for r in rules)
    origin = (f"Generated by `{study['command']}` on {study['finished']} (UTC), {study['wall_s'] / 60:.0f} min; raw "
              f"numbers in `{'selection_study.json'}`.\n\n" if study else "")
    status = ("**Every output of the study was identical to AR, token for token.**" if not summary_["mismatches"] else
              f"**{summary_['mismatches']} output(s) of the study DIFFERED from AR** — see `mismatches`.")
    sets = []
    for name, data in summary_["sets"].items():
        mass = ", ".join(f"{m:.2f}" for m in data["group_mass"])
        attention = data["attention"]
        sets.append(
            f"### `{name}`: {data['videos']} videos, {data['video_tokens']} video tokens (full-video τ "
            f"{data['full_tau']:.2f})\n\nVerifier attention: top 10% of the video tokens hold "
            f"{_spread(attention['top10_share'], 3)} of the mass (median [min, max]); the top 5% / 10% are object "
            f"tokens at a rate of {attention['object_precision_top5']['mean']:.2f} / "
            f"{attention['object_precision_top10']['mean']:.2f} (objects are {data['object_token_share']:.3f} of the "
            f"tokens); mass per temporal group (first to last): {mass}.\n\n"
            + study_table(data, rules, keeps, default))
    sources = summary_.get("sources")
    sources_text = ("" if not sources else
                    f"\n\n### Which attention: every layer and head (first set, first {sources['videos']} videos; τ at "
                    f"keep {sources['keep']:g} with the default rule on that source's scores)\n\n"
                    f"{sources_table(sources)}")
    goals = claims_module.selection_goals(summary_)
    return f"""## Selection study (issue 15): which video tokens the draft keeps

{origin}{status} A τ-only study: every rule × keep ratio is one greedy speculative `generate` call per video whose
output is checked against AR; τ is deterministic for a fixed selection, so no timing noise. Ablation rules are a pure
function of what the study measured about the video (per-layer and per-head attention, the testbed's ground-truth
object masks for the ceiling rows), forced into the same call (`bench/study.py`). Each cell: **τ / full-video τ**
[95% CI]; U / R = τ − τ(`uniform`) / τ − τ(`random`) [paired bootstrap 95% CI], ▲ / ▼ = CI entirely above / below 0.

{described}

**Issue 15's goals for the default** (thresholds fixed before the study; reported, not asserted):

{claims_table(goals)}

{chr(10).join(sets)}{sources_text}
"""

"""The paper's claims (a)-(d) and the issue's targets, each checked against our numbers: holds / does not hold.

Thresholds are fixed here, before looking at any result, and printed beside each verdict in RESULTS.md.
"""

from __future__ import annotations

from typing import Any

from .methods import FULL, LOOSE_DEFAULTS, STOCK, pruned_name

HOLDS, FAILS, UNMEASURED = "holds", "does not hold", "not measured"
INSENSITIVE_RATIO = 0.9  # (a): random pruning to half the video keeps >= 90% of full-video tau
MOST_MASS = 0.5  # (b): "most" of the attention mass
KEEP_FRACTION = 0.9  # (c): tau(verifier, keep 0.1) >= 90% of full-video tau
TARGET_SPEEDUP = 1.5
MAX_OVERHEAD_SHARE = 0.10
MAX_CAPTURE_SHARE = 0.05


def _find(summary: dict, a: str, b: str, metric: str, kind: str) -> dict[str, Any] | None:
    for c in summary.get("comparisons", []):
        if (c["a"], c["b"], c["metric"], c["kind"]) == (a, b, metric, kind):
            return c
    return None


def _ci(c: dict[str, Any], digits: int = 3) -> str:
    return f"{c['estimate']:.{digits}f} [95% CI {c['ci_low']:.{digits}f}, {c['ci_high']:.{digits}f}], n={c['n']}"


def _verdict(ok: bool) -> str:
    return HOLDS if ok else FAILS


def _row(key: str, claim: str, verdict: str, evidence: str) -> dict[str, str]:
    return {"id": key, "claim": claim, "verdict": verdict, "evidence": evidence}


def claim_a(main: dict) -> dict[str, str]:
    claim = "(a) the draft's speculation is insensitive to pruning: tau at keep 0.5 with `random` vs keep 1.0"
    c = _find(main, pruned_name(0.5, "random"), FULL, "tau", "ratio")
    if c is None:
        return _row("a", claim, UNMEASURED, "needs keep 0.5 and the `random` scorer")
    evidence = f"tau(random, 0.5) / tau(full) = {_ci(c)}; holds if >= {INSENSITIVE_RATIO}"
    return _row("a", claim, _verdict(c["estimate"] >= INSENSITIVE_RATIO), evidence)


def claim_b(main: dict) -> dict[str, str]:
    claim = "(b) a small share of video tokens carries most of the verifier's attention"
    top = main.get("attention", {}).get("top10_share")
    if not top:
        return _row("b", claim, UNMEASURED, "attention was not measured")
    evidence = (f"top 10% of video tokens hold {top['mean']:.3f} of the verifier's video attention (mean; median "
                f"{top['median']:.3f}, min {top['min']:.3f}, max {top['max']:.3f}); holds if > {MOST_MASS}")
    obj, share = main["attention"].get("object_attention_share"), main["attention"].get("object_token_share")
    if obj and share:
        evidence += f". Object tokens: {share['mean']:.3f} of the tokens, {obj['mean']:.3f} of the mass"
    return _row("b", claim, _verdict(top["mean"] > MOST_MASS), evidence)


def claim_c(main: dict, keep: float) -> dict[str, str]:
    claim = f"(c) at keep {keep:g}, verifier-guided keeps >= 90% of full-video tau and beats `uniform` and `random`"
    verifier = pruned_name(keep, "verifier")
    ratio = _find(main, verifier, FULL, "tau", "ratio")
    uniform = _find(main, verifier, pruned_name(keep, "uniform"), "tau", "diff")
    rand = _find(main, verifier, pruned_name(keep, "random"), "tau", "diff")
    if ratio is None or uniform is None or rand is None:
        return _row("c", claim, UNMEASURED, f"needs keep {keep:g} with the verifier, uniform and random scorers")
    parts = [ratio["estimate"] >= KEEP_FRACTION, uniform["ci_low"] > 0, rand["ci_low"] > 0]
    evidence = (f"tau(verifier)/tau(full) = {_ci(ratio)} (needs >= {KEEP_FRACTION}): {_verdict(parts[0])}; "
                f"tau(verifier) - tau(uniform) = {_ci(uniform)} (needs CI > 0): {_verdict(parts[1])}; "
                f"tau(verifier) - tau(random) = {_ci(rand)} (needs CI > 0): {_verdict(parts[2])}")
    capped = [c for c in main.get("comparisons", []) if c["b"] == verifier and c["metric"] == "tau"
              and c["a"].startswith("sd-verifier/")]  # the paper's Stage I rule, capped or not
    for c in capped:
        evidence += f". Not part of the verdict: tau({c['a']}) - tau(verifier) = {_ci(c)}"
    return _row("c", claim, _verdict(all(parts)), evidence)


def claim_d(main: dict, long: dict | None, keep: float) -> dict[str, str]:
    claim = ("(d) full-video SD is slower than pruned SD, and the gap grows with the number of video tokens "
             f"(decode-only speedups, verifier keep {keep:g} vs keep 1.0)")
    verifier = pruned_name(keep, "verifier")
    short = _find(main, verifier, FULL, "speedup_decode", "ratio")
    longer = _find(long, verifier, FULL, "speedup_decode", "ratio") if long else None
    if short is None or longer is None:
        return _row("d", claim, UNMEASURED, "needs the main and the long row set with both methods")
    n_short = main["methods"][FULL].get("video_tokens", 0)
    n_long = long["methods"][FULL].get("video_tokens", 0)
    parts = [short["ci_low"] > 1, longer["ci_low"] > 1, longer["estimate"] > short["estimate"]]
    evidence = (f"speedup(pruned)/speedup(full): {n_short:.0f} video tokens {_ci(short)}, "
                f"{n_long:.0f} video tokens {_ci(longer)}; holds if both CIs > 1 and the ratio grows")
    return _row("d", claim, _verdict(all(parts)), evidence)


def paper_claims(main: dict, long: dict | None, keeps: list[float]) -> list[dict[str, str]]:
    """Verdicts of the paper's claims (a)-(d)."""
    keep = 0.1 if 0.1 in keeps else keeps[0]
    return [claim_a(main), claim_b(main), claim_c(main, keep), claim_d(main, long, keep)]


def issue_targets(main: dict, keeps: list[float]) -> list[dict[str, str]]:
    """The issue's reported targets: decode speedup, overhead and capture shares at the smallest keep."""
    keep = 0.1 if 0.1 in keeps else keeps[0]
    method = main["methods"].get(pruned_name(keep, "verifier"))
    if not method or not method.get("samples"):
        return []
    rows = []
    speed = method["speedup_decode"]["median"]
    others = {m: main["methods"][m]["speedup_decode"]["median"] for m in (FULL, STOCK)
              if main["methods"].get(m, {}).get("samples")}
    ok = speed >= TARGET_SPEEDUP and all(speed > v for v in others.values())
    rows.append(_row(
        "T1", f"decode speedup at keep {keep:g} (verifier) >= {TARGET_SPEEDUP}x and above full-video SD and stock",
        _verdict(ok), f"median {speed:.2f}x; " + ", ".join(f"{m} {v:.2f}x" for m, v in others.items()),
    ))
    overhead = method["overhead_share_of_draft"]
    rows.append(_row("T2", f"overhead_s <= {MAX_OVERHEAD_SHARE:.0%} of drafting time (draft_s)",
                     _verdict(overhead <= MAX_OVERHEAD_SHARE), f"{overhead:.1%}"))
    capture = method["capture_share_of_prefill"]
    rows.append(_row("T3", f"capture <= {MAX_CAPTURE_SHARE:.0%} of the target prefill",
                     _verdict(capture <= MAX_CAPTURE_SHARE), f"{capture:.1%}"))
    return rows


LOOSE_RETENTION = 0.99  # loose target: fidelity retention (fact accuracy vs AR) at the defaults ...
LOOSE_TAU_RATIO = 1.5  # ... with tau >= 1.5x the strict row's tau at the same pruning


def default_loose_row(loose: dict[str, Any]) -> str | None:
    """The loose row at PruneConfig's default settings (rule `any` first, else `target_topk`)."""
    for rule in ("any", "target_topk"):
        for name, row in loose["rows"].items():
            settings = row.get("settings") or {}
            if settings and all(settings[k] == LOOSE_DEFAULTS[k] for k in ("relax_ratio", "shift_window")) \
                    and settings["loose_rule"] == rule:
                return name
    return None


def loose_ok(row: dict[str, Any]) -> tuple[bool, bool]:
    """(retention >= 99%, tau >= 1.5x strict) of one loose summary row."""
    retention, ratio = row.get("retention_fact"), row.get("tau_vs_strict")
    return (retention is not None and retention["estimate"] >= LOOSE_RETENTION,
            ratio is not None and ratio["estimate"] >= LOOSE_TAU_RATIO)


def best_retaining_row(loose: dict[str, Any]) -> str | None:
    """The lossy row with the highest tau ratio among those keeping retention >= 99% (None if none does)."""
    keep = [((row["tau_vs_strict"]["estimate"], row["retention_fact"]["estimate"], -row["settings"]["relax_ratio"],
              -row["settings"]["shift_window"]), name) for name, row in loose["rows"].items()
            if row.get("settings") and row.get("tau_vs_strict") and loose_ok(row)[0]
            and (row["settings"]["relax_ratio"] > 0 or row["settings"]["shift_window"] > 0)]
    return max(keep)[1] if keep else None


def loose_targets(main: dict) -> list[dict[str, str]]:
    """The loose-verification target: at the default settings retention >= 99% with tau >= 1.5x strict tau."""
    loose = main.get("loose")
    if not loose:
        return []
    claim = (f"loose verification at the defaults (relax {LOOSE_DEFAULTS['relax_ratio']:g}, shift "
             f"{LOOSE_DEFAULTS['shift_window']}): retention (fact accuracy vs AR) >= {LOOSE_RETENTION:.0%} with "
             f"tau >= {LOOSE_TAU_RATIO}x the strict tau at the same pruning")
    name = default_loose_row(loose)
    if name is None:
        return [_row("T4", claim, UNMEASURED, "the sweep has no row at the default settings")]
    row = loose["rows"][name]
    ok = loose_ok(row)
    def ci(key: str) -> str:
        return _ci(row[key]) if row.get(key) else "–"

    evidence = (f"`{name}`: retention {ci('retention_fact')}; exact-match retention {ci('retention_exact')}; "
                f"tau / strict tau {ci('tau_vs_strict')}")
    best = best_retaining_row(loose)
    gain = best and loose["rows"][best]["tau_vs_strict"]["estimate"]
    evidence += (f". Best setting keeping retention >= {LOOSE_RETENTION:.0%}: `{best}` (tau / strict "
                 f"{gain:.3f}{', i.e. no tau gain' if gain < 1.005 else ''}, retention "
                 f"{loose['rows'][best]['retention_fact']['estimate']:.3f})" if best else
                 f". No lossy setting keeps retention >= {LOOSE_RETENTION:.0%}")
    return [_row("T4", claim, _verdict(all(ok)), evidence)]


# -- issue 15: the selection default -----------------------------------------------------------------------------------

SELECTION_TAU_AT_01 = 0.92  # tau(default) / tau(full) at keep 0.1 on the 144-token set ...
SELECTION_TAU_AT_025 = 0.97  # ... and at keep 0.25
SELECTION_ABOVE_KEEP = 0.1  # above uniform and random at keep <= this on the first two row sets


def _diff(c: dict[str, Any]) -> str:
    return f"{c['estimate']:+.3f} [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}]"


def selection_goals(study: dict[str, Any]) -> list[dict[str, str]]:
    """Issue 15's goals for the default rule, from `summary.selection_study_summary`; thresholds fixed above."""
    default, sets = study["default_rule"], study["sets"]
    rows = []
    below = [f"{name} ({data['video_tokens']} tok) keep {k}: vs {b} {_diff(cell[f'vs_{b}'])}"
             for name, data in sets.items() for k, cell in data["rows"].get(default, {}).items()
             for b in ("uniform", "random") if cell[f"vs_{b}"]["ci_high"] < 0]
    measured = sum(len(d["rows"].get(default, {})) for d in sets.values())
    rows.append(_row("S1", f"`{default}` never below `uniform` or `random` (paired 95% CI of the τ difference not "
                     "entirely below 0) on every row set and keep", UNMEASURED if not measured else _verdict(not below),
                     f"{measured} set x keep cells; " + ("; ".join(below) if below else "none below")))
    first_two = list(sets)[:2]
    above, missing = [], []
    for name in first_two:
        for k, cell in sets[name]["rows"].get(default, {}).items():
            if float(k) <= SELECTION_ABOVE_KEEP:
                for b in ("uniform", "random"):
                    (above if cell[f"vs_{b}"]["ci_low"] > 0 else missing).append(
                        f"{sets[name]['video_tokens']} tok keep {k} vs {b} {_diff(cell[f'vs_{b}'])}")
    rows.append(_row("S2", f"`{default}` above both (CI > 0) at keep <= {SELECTION_ABOVE_KEEP:g} on the "
                     f"{' and '.join(str(sets[n]['video_tokens']) for n in first_two)}-token sets",
                     UNMEASURED if not above and not missing else _verdict(not missing),
                     "; ".join(missing) if missing else "; ".join(above)))
    main = sets[next(iter(sets))]
    for key, keep, threshold in (("S3", 0.1, SELECTION_TAU_AT_01), ("S4", 0.25, SELECTION_TAU_AT_025)):
        cell = main["rows"].get(default, {}).get(f"{keep:g}")
        claim = f"τ({default}) >= {threshold} x full-video τ at keep {keep:g} on the {main['video_tokens']}-token set"
        if cell is None:
            rows.append(_row(key, claim, UNMEASURED, f"needs keep {keep:g}"))
            continue
        best = max((r for r in main["rows"] if f"{keep:g}" in main["rows"][r]),
                   key=lambda r: main["rows"][r][f"{keep:g}"]["vs_full"]["estimate"])
        evidence = (f"{_ci(cell['vs_full'])}; best row of the study: `{best}` "
                    f"{main['rows'][best][f'{keep:g}']['vs_full']['estimate']:.3f}")
        rows.append(_row(key, claim, _verdict(cell["vs_full"]["estimate"] >= threshold), evidence))
    rows.append(_row("S5", "where the attention is concentrated (top 10% hold >= 50% of the mass) it selects what the "
                     "paper's rule selects", "tested", "tests/test_pruning.py::"
                     "test_concentrated_scores_select_what_the_paper_selects (constructed score vectors; no testbed "
                     "video is concentrated)"))
    return rows

"""Compare results with the manifest's expectations and give an honest verdict.

Verdict rules (the README states them too):
- a stated tolerance decides: |measured − published| ≤ tolerance (relative to the published value, or absolute);
- else, ± a 95% CI over episodes: reproduced when the difference is within the two half-widths combined,
  √(h_published² + h_measured²) (the two means do not differ significantly at the 5% level);
- else, ± a std over seeds: reproduced when the difference is within 1.96·√(s_p²/n_p + s_m²/n_m), with s_m = s_p
  and n_m = 1 when a single seed was run;
- several measured seeds against a CI over episodes: the measured half-width is √((1.96·s_m)² + c̄²)/√n_m, with c̄
  the seeds' mean 95% CI over episodes;
- only the seeds the claim lists count (a `--seed N` run outside them is reported, not judged);
- only the `paper` profile can reproduce anything: other profiles are reported as "<profile> only";
- results on generated stand-in data (`suite fetch miniimagenet --generated`) are "generated data — not a
  reproduction", whatever the numbers;
- results whose config hash differs from the manifest's current config, or whose numerics versions differ from the
  code's, are stale and ignored (the path that computed a result does not matter);
- a relation holds or fails by its margin; while some of its runs are missing, one failed comparison fails it,
  otherwise it is incomplete.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from suite.protocol import PAPER, Claim, Manifest
from suite.protocol.manifest import expand_metrics
from suite.results.store import Measured, current_records, measure, relation_runs_and_metrics

REPRODUCED, NOT_REPRODUCED, NOT_RUN = "reproduced", "not reproduced", "not run"
HOLDS, FAILS, INCOMPLETE = "holds", "fails", "incomplete"
GENERATED = "generated data — not a reproduction"


def judge(expectation: dict, measured: Measured) -> tuple[str, float]:
    """(verdict, allowed difference) for a published number, by the rules in this module's docstring."""
    published, diff = expectation["value"], abs(measured.mean - expectation["value"])
    tol = expectation.get("tolerance")
    if tol is not None:
        allowed = tol["relative"] * abs(published) if "relative" in tol else tol["absolute"]
    elif expectation["interval_kind"] == "ci95-episodes":
        if measured.interval_kind == "ci95-episodes":
            h_m = measured.interval
        else:  # the mean of several seeds: their spread and their own episode noise
            h_m = math.sqrt((1.96 * measured.interval) ** 2 / measured.n + measured.within ** 2 / measured.n)
        allowed = math.sqrt(expectation["interval"] ** 2 + h_m ** 2)
    else:  # std-seeds; one measured seed's spread is unknown, so the published std stands in for it
        s_p, n_p = expectation["interval"], expectation["interval_n"]
        s_m, n_m = (measured.interval, measured.n) if measured.interval_kind == "std-seeds" else (s_p, 1)
        allowed = 1.96 * math.sqrt(s_p ** 2 / n_p + s_m ** 2 / n_m)
    return (REPRODUCED if diff <= allowed else NOT_REPRODUCED), allowed


def check_relation(relation: dict, by_run: dict[str, list[dict]]) -> tuple[str, list[str]]:
    """(verdict, the comparisons that failed). The comparisons whose runs are measured are made: a failed one
    fails the relation for good; when none failed but runs are missing the relation is incomplete, saying how many
    comparisons held so far (a monotone relation compares neighbours in its run list that are both measured)."""
    metrics, margin, kind = expand_metrics(relation["metrics"]), relation["margin"], relation["kind"]
    failures, made, missing = [], 0, set()

    def mean(run, metric):
        m = measure(by_run.get(run, []), metric)
        if m is None:
            missing.add(run)
        return None if m is None else m.mean

    def ok(a, b):  # is "a kind b" true with the margin?
        return {"less": a < b - margin, "greater": a > b + margin,
                "at_most": a <= b + margin, "at_least": a >= b - margin}[kind]

    for metric in metrics:
        if kind in ("nondecreasing", "nonincreasing"):
            values = [mean(r, metric) for r in relation["runs"]]
            for (ra, a), (rb, b) in zip(zip(relation["runs"], values), zip(relation["runs"][1:], values[1:])):
                if a is None or b is None:
                    continue
                made += 1
                good = b >= a - margin if kind == "nondecreasing" else b <= a + margin
                if not good:
                    failures.append(f"{metric}: {ra} {a:.4g} → {rb} {b:.4g}")
            continue
        if "right_metrics" in relation:  # the same run, two metrics
            other = expand_metrics(relation["right_metrics"])[metrics.index(metric)]
            pairs = [(run, metric, run, other) for run in relation["left"]]
        else:
            pairs = [(left, metric, right, metric) for left in relation["left"] for right in relation["right"]]
        for left, m_left, right, m_right in pairs:
            a, b = mean(left, m_left), mean(right, m_right)
            if a is None or b is None:
                continue
            made += 1
            if not ok(a, b):
                failures.append(f"{left} {m_left} {a:.4g} vs {right} {m_right} {b:.4g}")
    if failures:
        return FAILS, failures
    if not missing:
        return HOLDS, []
    if not made:
        return NOT_RUN, []
    return (f"{INCOMPLETE}: held in the {made} comparison{'s' if made > 1 else ''} measured; "
            f"{len(missing)} run{'s' if len(missing) > 1 else ''} not run"), []


@dataclass
class ClaimReport:
    claim: Claim
    profile: str | None  # the profile whose results are reported (paper when it has any)
    numbers: pd.DataFrame
    relations: pd.DataFrame
    verdict: str
    stale: list[str]
    provenance: list[dict]
    diverged: list[str] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)  # the results reported (the chosen profile's)
    extra: list[dict] = field(default_factory=list)  # results of seeds the claim does not list
    compared: pd.DataFrame = field(default_factory=pd.DataFrame)  # see compared_values


def compared_values(claim: Claim, by_run: dict[str, list[dict]]) -> pd.DataFrame:
    """The measured values the relations compare or the figures draw and no published number shows, one row per
    run and metric in the manifest's run order: without them a claim judged on relations alone would print verdicts
    but no numbers."""
    body = claim.body(PAPER)
    e = body["expectations"]
    published = {(p["run"], p["metric"]) for p in e.get("published", [])}
    shown = [relation_runs_and_metrics(r) for r in e.get("relations", [])]
    shown += [([run for points in f["series"].values() for run in points], [f["metric"]]) for f in body["figures"]]
    runs, metrics = {}, {}
    for run_list, metric_list in shown:
        for run in run_list:
            for metric in metric_list:
                if (run, metric) not in published:
                    runs[run], metrics[metric] = None, None
    order = list(body["runs"])
    rows = []
    for run in sorted(runs, key=order.index):
        for metric in metrics:
            m = measure(by_run.get(run, []), metric)
            rows.append({"run": run, "metric": metric, "measured": None if m is None else m.mean,
                         "measured ±": None if m is None else m.interval,
                         "measured ± means": None if m is None else m.interval_kind, "n": None if m is None else m.n})
    return pd.DataFrame(rows)


def diverged_episodes(record: dict) -> str | None:
    """'k of n test tasks diverged (non-finite from <metric>)' when fine-tuning blew up on some tasks."""
    for metric, values in record.get("episodes", {}).items():
        bad = sum(1 for v in values if not math.isfinite(v))
        if bad:
            return f"{record['run']} (seed {record['seed']}): {bad} of {len(values)} test tasks diverged " \
                   f"(non-finite from {metric})"
    return None


def claim_report(claim: Claim, records: list[dict]) -> ClaimReport:
    mine = [r for r in records if r["claim"] == claim.id]
    current = [r for p in claim.profiles for r in current_records(claim, mine, p)]
    def listed(r):  # a known profile, run and seed: then a result not current is stale
        return r["profile"] in claim.profiles and r["run"] in claim.body(r["profile"])["runs"] and \
            r["seed"] in claim.body(r["profile"])["seeds"]
    stale = [r for r in mine if r not in current and (listed(r) or r["profile"] not in claim.profiles
                                                      or r["run"] not in claim.body(r["profile"])["runs"])]
    extra = [r for r in mine if r not in current and r not in stale]
    profiles = {r["profile"] for r in current}
    profile = PAPER if PAPER in profiles else (sorted(profiles)[0] if profiles else None)
    order = list(claim.body(profile)["runs"]) if profile else []
    chosen = sorted([r for r in current if r["profile"] == profile], key=lambda r: (order.index(r["run"]), r["seed"]))
    by_run: dict[str, list[dict]] = {}
    for r in chosen:
        by_run.setdefault(r["run"], []).append(r)
    expectations = claim.body(PAPER)["expectations"]
    only = None if profile in (None, PAPER) else f"{profile} only"
    if any((r["provenance"].get("data") or {}).get("generated") for r in chosen):
        only = ("" if profile == PAPER else f"{profile}, ") + GENERATED

    rows = []
    for e in expectations.get("published", []):
        m = measure(by_run.get(e["run"], []), e["metric"])
        verdict, allowed = (NOT_RUN, None) if m is None else judge(e, m)
        rows.append({
            "row": e["row"], "column": e["column"], "run": e["run"], "metric": e["metric"],
            "published": e["value"], "published ±": e.get("interval"), "± means": e["interval_kind"],
            "measured": None if m is None else m.mean, "measured ±": None if m is None else m.interval,
            "measured ± means": None if m is None else m.interval_kind, "n": None if m is None else m.n,
            "difference": None if m is None else m.mean - e["value"], "allowed": allowed,
            "verdict": only if (only and m is not None) else verdict, "source": e["source"],
        })
    numbers = pd.DataFrame(rows)

    rel_rows = []
    for r in expectations.get("relations", []):
        held, failures = check_relation(r, by_run)
        verdict = held if held == NOT_RUN or not only else f"{only} ({held})"
        rel_rows.append({"relation": r["statement"], "source": r["source"], "margin": r["margin"],
                         "verdict": verdict, "failed comparisons": "; ".join(failures[:4]) +
                         (f" (+{len(failures) - 4} more)" if len(failures) > 4 else "")})
    relations = pd.DataFrame(rel_rows)

    if profile is None:
        verdict = NOT_RUN
    elif only:
        verdict = only
    else:
        verdicts = list(numbers.get("verdict", [])) + list(relations.get("verdict", []))
        if any(v == NOT_RUN or v.startswith(INCOMPLETE) for v in verdicts):
            verdict = INCOMPLETE
        elif all(v in (REPRODUCED, HOLDS) for v in verdicts):
            verdict = REPRODUCED
        else:
            verdict = NOT_REPRODUCED
    provenance = [{"run": r["run"], "seed": r["seed"], **{k: r["provenance"].get(k) for k in
                   ("git_commit", "git_dirty", "device", "device_name", "train_seconds", "eval_seconds", "gpu_hours")}}
                  for r in chosen]
    diverged = [d for r in chosen if (d := diverged_episodes(r))]
    return ClaimReport(claim, profile, numbers, relations, verdict, [r["_path"] for r in stale], provenance, diverged,
                       chosen, extra, compared_values(claim, by_run) if profile else pd.DataFrame())


def build_reports(manifest: Manifest, records: list[dict], claim_ids=None) -> list[ClaimReport]:
    ids = claim_ids or list(manifest.claims)
    return [claim_report(manifest.claim(c), records) for c in ids]

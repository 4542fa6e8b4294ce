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
- a relation holds or fails by its margin (comparing with a multiple of the right side where it has a factor); while some of its runs are missing, one failed comparison fails it,
  otherwise it is incomplete;
- several seeds: the verdict is their mean's, by the rules above; each seed is also judged alone (its mean ± its
  95% CI over episodes) and the report says how many of them are within, and explains a mean whose seeds
  disagree with it;
- diverged test tasks (a query loss above the claim's expectations.divergence.loss_above, or not finite) stay in
  the judged mean, as the papers average over all their tasks; the report counts them per step and seed and shows,
  labelled, the mean over the other tasks and the median, and says when a number or a relation fails only
  through them;
- sensitivity variants are judged by the same rules with their runs' results in place of the runs' own: the
  report says which variants would reproduce the claim; they never change its verdict.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from suite.protocol import PAPER, Claim, Manifest, shared_trainings
from suite.protocol.manifest import expand_metrics, figure_points, variant_published
from suite.results.costs import current_costs
from suite.results.store import (Measured, current_progress, current_records, current_variant_progress,
                                 current_variant_records, measure,
                                 relation_runs_and_metrics, twin_in_claim)

REPRODUCED, NOT_REPRODUCED, NOT_RUN = "reproduced", "not reproduced", "not run"
HOLDS, FAILS, INCOMPLETE = "holds", "fails", "incomplete"
OWN_PUBLISHED = " (against its own published numbers)"  # a sensitivity variant's verdict on another paper's numbers
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
    factor = relation.get("factor", 1.0)
    failures, made, missing = [], 0, set()

    def mean(run, metric):
        m = measure(by_run.get(run, []), metric)
        if m is None:
            missing.add(run)
        return None if m is None else m.mean

    def ok(a, b):  # is "a kind factor·b" true with the margin?
        b = factor * b
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
                scaled = f" (× {factor:g} = {factor * b:.4g})" if factor != 1.0 else ""
                failures.append(f"{left} {m_left} {a:.4g} vs {right} {m_right} {b:.4g}{scaled}")
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
    records: list[dict] = field(default_factory=list)  # the results reported (the chosen profile's)
    extra: list[dict] = field(default_factory=list)  # results of seeds the claim does not list
    compared: pd.DataFrame = field(default_factory=pd.DataFrame)  # see compared_values
    diverged: pd.DataFrame = field(default_factory=pd.DataFrame)  # see divergence_counts
    divergence: pd.DataFrame = field(default_factory=pd.DataFrame)  # see divergence_statistics
    sensitivity: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per variant, see sensitivity
    sensitivity_numbers: pd.DataFrame = field(default_factory=pd.DataFrame)  # their measured published numbers
    explanation: list[str] = field(default_factory=list)  # why the verdict is what it is, in sentences
    in_progress: list[dict] = field(default_factory=list)  # paper trainings under way (results.store.load_progress)
    paper_iterations: int = 0  # what all the paper profile's runs and seeds train, in iterations (a shared training
    # once: Claim.trained_by)
    not_started: list[dict] = field(default_factory=list)  # paper runs and seeds with neither result nor progress,
    # each with what `suite plan --record` measured it to cost (not_started_runs)
    sensitivity_values: pd.DataFrame = field(default_factory=pd.DataFrame)  # what variants measure beyond their
    # runs' own metrics (variant_values)
    variant_results: list[dict] = field(default_factory=list)  # its sensitivity variants' results of the profile
    # reported, current by the manifest (current_variant_records)
    variant_progress: list[dict] = field(default_factory=list)  # the paper profile's retraining sensitivity variants'
    # trainings under way (results.store.current_variant_progress), in the manifest's order of variants, runs, seeds

    def progress_text(self) -> str | None:
        """"paper in progress (k of n iterations)" while paper trainings are under way and not all have results."""
        if not self.in_progress:
            return None
        finished = self.records if self.profile == PAPER else []
        done = sum(p["iteration"] for p in self.in_progress) + sum(r["training"]["iterations"] for r in finished
                                                                   if not twin_in_claim(r))
        return f"paper in progress ({done:,} of {self.paper_iterations:,} iterations)"

    def divergence_rule(self) -> str:
        d = self.claim.body(PAPER)["expectations"]["divergence"]
        return f"query loss above {d['loss_above']:g} or not finite" if "loss_above" in d else \
            "query loss not finite"


def compared_values(claim: Claim, by_run: dict[str, list[dict]]) -> pd.DataFrame:
    """The measured values the relations compare, the figures draw or the expectations report (every run's) and no
    published number shows, one row per run and metric in the manifest's run order: without them a claim judged on
    relations alone would print verdicts but no numbers."""
    body = claim.body(PAPER)
    e = body["expectations"]
    published = {(p["run"], p["metric"]) for p in e.get("published", [])}
    shown = [relation_runs_and_metrics(r) for r in e.get("relations", [])]
    shown += [([run], [metric]) for f in body["figures"] for points in figure_points(f).values()
              for run, _, metric in points]
    shown += [(list(body["runs"]), expand_metrics(e.get("reported", [])))]
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


# ---- diverged test tasks ----

def loss_metric(metric: str) -> str:
    """The metric whose per-task values say whether a task diverged: the query loss after the same step count, in
    the same mode (accuracy@5/transductive → loss@5/transductive; an mse is its own)."""
    name, _, rest = metric.partition("@")
    if name in ("nll", "coverage90"):  # a set of particles' predictive distribution: its mse says
        return f"mse@{rest}"
    return metric if name in ("mse", "loss") else f"loss@{rest}"


def diverged_tasks(record: dict, metric: str, bound: float | None) -> list[bool] | None:
    """Per test task, whether its fine-tuning had diverged when `metric` was measured (None: no per-task values)."""
    values = record.get("episodes", {}).get(loss_metric(metric))
    if values is None:
        return None
    return [not math.isfinite(v) or (bound is not None and v > bound) for v in values]


def _bound(claim: Claim) -> float | None:
    return claim.body(PAPER)["expectations"]["divergence"].get("loss_above")


def divergence_counts(records: list[dict], bound: float | None) -> pd.DataFrame:
    """Per run and seed (and variant) whose fine-tuning diverged on some test task: how many tasks had diverged
    after each step count, for every loss metric where any had."""
    rows = []
    for r in records:
        counts = {}
        for metric in r.get("episodes", {}):
            if loss_metric(metric) == metric:
                bad = sum(diverged_tasks(r, metric, bound))
                if bad:
                    counts[metric] = bad
        if counts:
            rows.append({"run": r["run"], "variant": r.get("variant") or "—", "seed": r["seed"],
                         "tasks": len(r["episodes"][next(iter(counts))]), **counts})
    if not rows:
        return pd.DataFrame()
    table = pd.DataFrame(rows)
    metrics = sorted((c for c in table.columns if "@" in c), key=lambda m: (m.partition("@")[2].partition("/")[2],
                                                                          int(m.partition("@")[2].split("/")[0])))
    return table[["run", "variant", "seed", "tasks", *metrics]].fillna({m: 0 for m in metrics}).astype(
        {m: int for m in metrics})


def _stats(values: list[float], bad: list[bool]) -> tuple[float, float, float]:
    """(mean over all tasks, mean over the non-diverged ones, median over all) of one seed's per-task values."""
    kept = [v for v, b in zip(values, bad) if not b]
    ordered = sorted(values, key=lambda v: (math.isnan(v), v))  # nan sorts last, as the largest loss
    n = len(ordered)
    median = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
    return sum(values) / n, (sum(kept) / len(kept) if kept else math.nan), median


def kept_view(records: list[dict], bound: float | None) -> list[dict]:
    """The records with each metric's mean taken over the test tasks that had not diverged when it was measured
    (the labelled statistic that explains a verdict; it never makes one)."""
    out = []
    for r in records:
        metrics = dict(r["metrics"])
        for metric, values in r.get("episodes", {}).items():
            bad = diverged_tasks(r, metric, bound)
            if bad is not None and any(bad) and metric in metrics:
                metrics[metric] = dict(metrics[metric], mean=_stats(values, bad)[1])
        out.append(dict(r, metrics=metrics))
    return out


def divergence_statistics(claim: Claim, by_run: dict[str, list[dict]], bound: float | None) -> pd.DataFrame:
    """For each published number some of whose test tasks diverged: the mean over all tasks (the published
    statistic, which the verdict judges), the mean over the tasks that had not diverged and the median, each
    averaged over seeds, with the diverged tasks counted over all seeds."""
    rows = []
    for e in claim.body(PAPER)["expectations"].get("published", []):
        records = [r for r in by_run.get(e["run"], []) if e["metric"] in r.get("episodes", {})]
        masks = [diverged_tasks(r, e["metric"], bound) for r in records]
        if not any(m and any(m) for m in masks):
            continue
        stats = [_stats(r["episodes"][e["metric"]], m) for r, m in zip(records, masks)]
        kept = measure(kept_view(records, bound), e["metric"])
        verdict, _ = judge(e, kept)
        rows.append({"row": e["row"], "column": e["column"], "run": e["run"], "metric": e["metric"],
                     "published": e["value"], "diverged": f"{sum(map(sum, masks))} of {sum(map(len, masks))}",
                     "mean, all tasks": sum(s[0] for s in stats) / len(stats),
                     "mean, non-diverged tasks": sum(s[1] for s in stats) / len(stats),
                     "median, all tasks": sum(s[2] for s in stats) / len(stats),
                     "non-diverged mean would be": verdict})
    return pd.DataFrame(rows)


# ---- numbers, relations and the verdict of one set of results ----

def _verdict_of(numbers: pd.DataFrame, relations: pd.DataFrame, only: str | None) -> str:
    if only:
        return only
    verdicts = list(numbers.get("verdict", [])) + list(relations.get("verdict", []))
    if any(v == NOT_RUN or v.startswith(INCOMPLETE) for v in verdicts):
        return INCOMPLETE
    if all(v in (REPRODUCED, HOLDS) for v in verdicts):
        return REPRODUCED
    return NOT_REPRODUCED


def judge_results(claim: Claim, by_run: dict[str, list[dict]], only: str | None,
                  bound: float | None, published: list[dict] | None = None) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """(published vs measured, relations, verdict) of the claim on these results, per run; `published`: other
    published numbers in place of the claim's (a sensitivity variant's own)."""
    expectations = claim.body(PAPER)["expectations"]
    rows = []
    for e in expectations.get("published", []) if published is None else published:
        m = measure(by_run.get(e["run"], []), e["metric"])
        verdict, allowed = (NOT_RUN, None) if m is None else judge(e, m)
        within = None if m is None or not m.per_seed else sum(judge(e, s)[0] == REPRODUCED for s in m.per_seed)
        rows.append({
            "row": e["row"], "column": e["column"], "run": e["run"], "metric": e["metric"],
            "published": e["value"], "published ±": e.get("interval"), "± means": e["interval_kind"],
            "measured": None if m is None else m.mean, "measured ±": None if m is None else m.interval,
            "measured ± means": None if m is None else m.interval_kind, "n": None if m is None else m.n,
            "seeds": None if m is None or not m.per_seed else tuple(s.mean for s in m.per_seed),
            "seeds within": None if within is None else f"{within} of {len(m.per_seed)}",
            "difference": None if m is None else m.mean - e["value"], "allowed": allowed,
            "verdict": only if (only and m is not None) else verdict, "source": e["source"],
        })
    numbers = pd.DataFrame(rows)
    rel_rows = []
    for r in expectations.get("relations", []):
        held, failures = check_relation(r, by_run)
        if held == FAILS and not check_relation(r, {run: kept_view(rs, bound) for run, rs in by_run.items()})[1]:
            held = f"{FAILS} only through diverged test tasks (holds on the means over the others)"
        verdict = held if held == NOT_RUN or not only else f"{only} ({held})"
        rel_rows.append({"relation": r["statement"], "source": r["source"], "margin": r["margin"],
                         "verdict": verdict, "failed comparisons": "; ".join(failures[:4]) +
                         (f" (+{len(failures) - 4} more)" if len(failures) > 4 else "")})
    relations = pd.DataFrame(rel_rows)
    return numbers, relations, _verdict_of(numbers, relations, only)


def value_text(value, interval=None, percent=False) -> str:
    """Accuracies as percentages, as papers print them; everything else with 4 significant digits. A measured
    nan (a fine-tuning run that diverged) prints as nan; missing values as —."""
    if value is None:
        return "—"
    if interval is not None and interval != interval:
        interval = None
    if percent:
        return f"{100 * value:.2f}" + (f" ± {100 * interval:.2f}" if interval is not None else "")
    return f"{value:.4g}" + (f" ± {interval:.2g}" if interval is not None else "")


def _short(x: float, metric: str) -> str:
    return value_text(x, percent=metric.startswith("accuracy"))


def duration_text(seconds: float) -> str:
    """A duration as people read it: seconds under two minutes, minutes under two hours, then hours."""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min" if seconds < 7200 else \
        f"{seconds / 3600:.1f} h"


# ---- sensitivity variants ----

def sensitivity(claim: Claim, profile: str, by_run: dict[str, list[dict]], variant_records: dict[str, list[dict]],
                only: str | None, bound: float | None, in_progress: dict[str, list[dict]] | None = None,
                planned: dict[str, float] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per variant: what it changes, whether it retrains, its seeds measured, whether it has its own
    published numbers (own_published) and the claim's verdict
    with its results in place of its runs', or, for a variant with no result yet whose training is under way
    (`in_progress`, results.store.current_variant_progress), how far it is; the published numbers of its runs as
    it measured them: the claim's, or the variant's own where the manifest gives them, `own_published`).
    `planned`: {run: one seed's training seconds as `suite plan --record` measured it} (planned_training), what a
    retraining variant's cost falls back on for runs with no training of their own yet."""
    body, rows, numbers = claim.body(profile), [], []
    base_train = {run: [r["provenance"].get("train_seconds") for r in records] for run, records in by_run.items()}
    for name, variant in body["sensitivity"].items():
        configs = claim.variant_configs(profile, variants=[name], seeds=body["seeds"][:1])
        retrains = any(c.retrains for c in configs)
        records = variant_records.get(name, [])
        if records:
            replaced = dict(by_run)
            for run in variant["runs"]:
                replaced[run] = [r for r in records if r["run"] == run]
            table, _, verdict = judge_results(claim, replaced, only, bound,
                                              variant_published(claim.body(PAPER)["expectations"], variant))
            if "published" in variant:  # judged against its own protocol's numbers, not the claim's
                verdict += OWN_PUBLISHED
            if len(table):
                table = table[table["run"].isin(variant["runs"])].assign(variant=name,
                                                                          own_published="published" in variant)
                at = variant.get("judged_at", {})  # the metric each number was judged at, where not the claim's
                table["judged at"] = [m if m in at.values() else None for m in table["metric"]]
                numbers.append(table)
        elif under_way := (in_progress or {}).get(name):
            verdict = (f"in progress ({sum(p['iteration'] for p in under_way):,} of "
                       f"{sum(c.hyperparameters['iterations'] for c in configs if c.retrains):,} iterations)")
        else:
            verdict = NOT_RUN
        cost = "evaluation only" if not retrains else "retrains" + _retraining_cost(variant["runs"], records,
                                                                                   base_train, planned or {})
        rows.append({"variant": name, "runs": ", ".join(variant["runs"]), "question": variant["question"],
                     "source": variant["source"], "cost": cost,
                     "seeds measured": len({r["seed"] for r in records}), "verdict": verdict,
                     "own_published": "published" in variant})
    return pd.DataFrame(rows), (pd.concat(numbers, ignore_index=True) if numbers else pd.DataFrame())


def _retraining_cost(runs: list[str], records: list[dict], base_train: dict[str, list], planned: dict[str, float]
                     ) -> str:
    """What a retraining variant costs per seed: its own trainings' measured time where it has results (naming the
    runs it trained when not all of them, with an estimate of the others), else an estimate of all its runs."""
    own = {run: [r["provenance"].get("train_seconds") for r in records if r["run"] == run] for run in runs}
    own = {run: [s for s in seconds if s] for run, seconds in own.items()}
    if trained := [run for run in runs if own[run]]:
        per_seed = sum(sum(own[run]) / len(own[run]) for run in trained)
        rest = [run for run in runs if run not in trained]
        seconds, sources, missing = _estimated_training(rest, base_train, planned)
        more = (f", ≈{duration_text(seconds)} more per seed by {sources}" if sources else "") + missing
        return f": {duration_text(per_seed)} per seed, measured" + (
            f" ({', '.join(trained)}; not yet {', '.join(rest)}{more})" if rest else "")
    seconds, sources, missing = _estimated_training(runs, base_train, planned)
    return f": ≈{duration_text(seconds)} per seed ({sources}){missing}" if sources else ""


def _estimated_training(runs: list[str], base_train: dict[str, list], planned: dict[str, float]
                        ) -> tuple[float, str, str]:
    """One seed's training of these runs, estimated: (seconds, where they come from, the runs not costed): the sum
    over them of each run's own training time (mean over its seeds), or where a run has none yet, what `suite plan`
    measured it to cost; runs with neither are named as not costed, not guessed from the others."""
    measured = {run: sum(s) / len(s) for run in runs if (s := [s for s in base_train.get(run, []) if s])}
    from_plan = {run: planned[run] for run in runs if run not in measured and run in planned}
    missing = [run for run in runs if run not in measured and run not in from_plan]
    sources = ([f"its runs' own training time{'' if len(measured) == len(runs) else ': ' + ', '.join(measured)}"]
               if measured else []) + ([f"`suite plan`: {', '.join(from_plan)}"] if from_plan else [])
    return (sum(measured.values()) + sum(from_plan.values()), "; ".join(sources),
            f", not costed: {', '.join(missing)}" if missing and sources else "")


def planned_training(claim: Claim, costs: list[dict]) -> dict[str, float]:
    """{run: one seed's training seconds as recorded by `suite plan --record` for the paper profile} (the first kind
    of device recorded; runs whose training another run of the claim shares are left out, as their record costs
    their evaluation alone)."""
    out: dict[str, float] = {}
    for (run, _), estimates in current_costs(claim, costs, PAPER).items():
        for estimate in estimates:
            if estimate["trained by"] is None:
                out.setdefault(run, estimate["training h"] * 3600)
    return out


def _family(metric: str) -> tuple[str, str]:
    """A metric without its step count: accuracy@100/frozen-1-2-3-4 → (accuracy, frozen-1-2-3-4)."""
    name, _, rest = metric.partition("@")
    return name, rest.partition("/")[2]


def variant_values(claim: Claim, profile: str, by_run: dict[str, list[dict]],
                   variant_records: dict[str, list[dict]], compared: pd.DataFrame) -> pd.DataFrame:
    """The values a variant measures that its runs' own results do not (more test-time steps, say), of the
    metrics the claim's published numbers and compared values are about, whatever their step count: one row per
    variant, run and metric (its mean over the variant's seeds, as compared_values)."""
    shown = {_family(p["metric"]) for p in claim.body(PAPER)["expectations"].get("published", [])}
    shown |= {_family(m) for m in (compared["metric"] if len(compared) else ())}
    rows = []
    for name, records in variant_records.items():
        for run in claim.body(profile)["sensitivity"][name]["runs"]:
            mine = [r for r in records if r["run"] == run]
            own = {m for r in by_run.get(run, []) for m in r["metrics"]}
            for metric in dict.fromkeys(m for r in mine for m in r["metrics"]):
                if metric not in own and _family(metric) in shown and (m := measure(mine, metric)) is not None:
                    rows.append({"variant": name, "run": run, "metric": metric, "measured": m.mean,
                                 "measured ±": m.interval, "measured ± means": m.interval_kind, "n": m.n})
    return pd.DataFrame(rows)


# ---- the explanation ----

def _side(difference: float) -> str:
    return "above" if difference > 0 else "below"


def under_variants(variant_numbers: pd.DataFrame, number: pd.Series) -> str:
    """Where the protocol variants that measured one published number (a row of judge_results' table) put it, e.g.
    "bn-non-transductive and test-steps-10 (at accuracy@10) measure it below the published value, by more than
    allowed" ("" when none measured it); a variant judging it at another metric (`judged_at`) says which."""
    if variant_numbers is None or not len(variant_numbers):
        return ""
    mine = variant_numbers[(variant_numbers["run"] == number["run"]) & (variant_numbers["row"] == number["row"])
                           & (variant_numbers["column"] == number["column"])
                           & (variant_numbers["verdict"] != NOT_RUN) & ~variant_numbers["own_published"]]
    groups: dict[str, list[str]] = {}
    for _, v in mine.iterrows():
        where = "within the allowed difference" if v["verdict"] == REPRODUCED else \
            f"{_side(v['difference'])} the published value, by more than allowed"
        groups.setdefault(where, []).append(v["variant"] + ("" if v["metric"] == number["metric"]
                                                            else f" (at {v['metric']})"))
    return "; ".join(f"{_listed(names)} measure{'s' if len(names) == 1 else ''} it {where}"
                     for where, names in groups.items())


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def explain(numbers: pd.DataFrame, relations: pd.DataFrame, divergence: pd.DataFrame, variants: pd.DataFrame,
            verdict: str, seeds_missing: dict[str, list[int]],
            variant_numbers: pd.DataFrame | None = None) -> list[str]:
    """Sentences saying why the verdict is what it is, from the tables alone (`variant_numbers`: the sensitivity
    variants' measured published numbers, see sensitivity)."""
    out = [f"Run {run}: seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))} of the claim's not measured; "
           "the verdict judges the others." for run, seeds in seeds_missing.items()]
    by_number = {(d["run"], d["metric"]): d for _, d in divergence.iterrows()} if len(divergence) else {}
    for _, n in numbers.iterrows() if len(numbers) else ():
        what = f"{n['row']}, {n['column']} ({n['run']} {n['metric']})"
        d = by_number.get((n["run"], n["metric"]))
        if n["verdict"] == NOT_REPRODUCED and d is None:  # no diverged task to blame: which side, and the variants
            variants_say = under_variants(variant_numbers, n)
            out.append(f"{what}: measured {_side(n['difference'])} the published value, by more than allowed"
                       + (f"; of the protocol variants, {variants_say}." if variants_say else "."))
        if n["verdict"] == NOT_REPRODUCED and d is not None:
            out.append(f"{what}: {d['diverged']} test tasks diverged; over the others the mean is "
                       f"{_short(d['mean, non-diverged tasks'], d['metric'])} and the median "
                       f"{_short(d['median, all tasks'], d['metric'])}, "
                       + ("which would be reproduced: it fails through the diverged tasks alone." if
                          d["non-diverged mean would be"] == REPRODUCED else
                          f"which would still be {d['non-diverged mean would be']}."))
        elif d is not None:
            out.append(f"{what}: {d['diverged']} test tasks diverged; the verdict counts them, as the paper's mean "
                       "does.")
        if isinstance(n.get("seeds within"), str):
            k, total = (int(x) for x in n["seeds within"].split(" of "))
            if (n["verdict"] == REPRODUCED and k < total) or (n["verdict"] == NOT_REPRODUCED and k > 0):
                out.append(f"{what}: the seeds disagree: {k} of {total} are within alone "
                           f"({', '.join(_short(x, n['metric']) for x in n['seeds'])}); the "
                           f"verdict is their mean's ({n['verdict']}).")
    for _, r in relations.iterrows() if len(relations) else ():
        if "only through diverged" in r["verdict"]:
            out.append(f"Relation \"{r['relation']}\" {r['verdict']}.")
    if len(variants) and verdict == NOT_REPRODUCED:
        measured = variants[(variants["seeds measured"] > 0) & ~variants["own_published"]]
        good = list(measured[measured["verdict"] == REPRODUCED]["variant"])
        unmeasured = list(variants[variants["seeds measured"] == 0]["variant"])
        if good:
            out.append(f"These protocol variants would reproduce it: {', '.join(good)} (see the sensitivity table).")
        elif len(measured):
            out.append(f"None of the {len(measured)} protocol variants measured would reproduce it.")
        if unmeasured:
            out.append(f"Not measured: {', '.join(unmeasured)}.")
    return out


def not_started_runs(claim: Claim, records: list[dict], in_progress: list[dict], costs: list[dict],
                     across: dict | None = None, elsewhere: dict | None = None) -> list[dict]:
    """The paper profile's runs and seeds with no current result and no training under way, in the manifest's
    order: {run, seed, iterations, estimates, trained_by, same_training, under_way_as}, the estimates (suite.results.
    costs.current_costs) one per kind of device whose recorded cost is of the run's current configuration, none where
    nothing was recorded; trained_by, the run whose training it shares (Claim.trained_by), else None; same_training,
    the other claims' runs that need its training (`across`: Manifest.shared_across_claims); under_way_as, the
    training under way of one of those (`elsewhere`: claims_under_way), its own training, else None."""
    done = {(r["run"], r["seed"]) for r in current_records(claim, records, PAPER)}
    done |= {(p["run"], p["seed"]) for p in in_progress}
    estimates, twins = current_costs(claim, costs, PAPER), claim.trained_by(PAPER)
    out = []
    for cfg in claim.run_configs(PAPER):
        if (cfg.run, cfg.seed) in done:
            continue
        same = (across or {}).get((claim.id, cfg.run, cfg.seed), [])
        under_way = [p for name in same if (p := (elsewhere or {}).get((*name.split("/"), cfg.seed)))]
        out.append({"run": cfg.run, "seed": cfg.seed, "iterations": cfg.hyperparameters["iterations"],
                    "estimates": estimates.get((cfg.run, cfg.seed), []), "trained_by": twins.get(cfg.run),
                    "same_training": same, "under_way_as": under_way[0] if under_way else None})
    return out


def claims_under_way(manifest: Manifest, records: list[dict], progress: list[dict]) -> dict:
    """{(claim, run, seed): its paper training under way} over the manifest's claims (current_progress), for the
    claims whose runs need the same training (not_started_runs)."""
    return {(c.id, p["run"], p["seed"]): p for c in manifest.claims.values() if PAPER in c.profiles
            for p in current_progress(c, progress, [r for r in records if r["claim"] == c.id
                                                    and not r.get("variant")], PAPER)}


def claim_report(claim: Claim, records: list[dict], progress: list[dict] = (), costs: list[dict] = (),
                 across: dict | None = None, elsewhere: dict | None = None) -> ClaimReport:
    mine = [r for r in records if r["claim"] == claim.id]
    runs_of = [r for r in mine if not r.get("variant")]
    current = [r for p in claim.profiles for r in current_records(claim, runs_of, p)]
    def listed(r):  # a known profile, run and seed: then a result not current is stale
        return r["profile"] in claim.profiles and r["run"] in claim.body(r["profile"])["runs"] and \
            r["seed"] in claim.body(r["profile"])["seeds"]
    stale = [r for r in runs_of if r not in current and (listed(r) or r["profile"] not in claim.profiles
                                                         or r["run"] not in claim.body(r["profile"])["runs"])]
    extra = [r for r in runs_of if r not in current and r not in stale]
    profiles = {r["profile"] for r in current}
    profile = PAPER if PAPER in profiles else (sorted(profiles)[0] if profiles else None)
    order = list(claim.body(profile)["runs"]) if profile else []
    chosen = sorted([r for r in current if r["profile"] == profile], key=lambda r: (order.index(r["run"]), r["seed"]))
    by_run: dict[str, list[dict]] = {}
    for r in chosen:
        by_run.setdefault(r["run"], []).append(r)
    only = None if profile in (None, PAPER) else f"{profile} only"
    if any((r["provenance"].get("data") or {}).get("generated") for r in chosen):
        only = ("" if profile == PAPER else f"{profile}, ") + GENERATED
    bound = _bound(claim)
    numbers, relations, verdict = judge_results(claim, by_run, only, bound)
    if profile is None:
        verdict = NOT_RUN
    variant_records = current_variant_records(claim, mine, profile or PAPER)
    current_variants = [r for rs in variant_records.values() for r in rs]
    any_profile = [r for p in claim.profiles for rs in current_variant_records(claim, mine, p).values() for r in rs]
    stale += [r for r in mine if r.get("variant") and r not in any_profile]
    variants_under_way = current_variant_progress(claim, list(progress), variant_records, profile or PAPER)
    variants, variant_numbers = sensitivity(claim, profile or PAPER, by_run, variant_records, only, bound,
                                            variants_under_way, planned_training(claim, list(costs)))
    if profile not in (None, PAPER):  # the progress section is the paper profile's
        variants_under_way = current_variant_progress(claim, list(progress),
                                                      current_variant_records(claim, mine, PAPER), PAPER)
    divergence = divergence_statistics(claim, by_run, bound)
    listed = claim.body(profile)["seeds"] if profile else []
    seeds_missing = {run: missing for run, records in by_run.items()
                     if (missing := sorted(set(listed) - {r["seed"] for r in records}))}
    in_progress = current_progress(claim, list(progress), runs_of, PAPER)
    compared = compared_values(claim, by_run) if profile else pd.DataFrame()
    provenance = [{"run": r["run"], "seed": r["seed"], **{k: r["provenance"].get(k) for k in
                   ("git_commit", "git_dirty", "device", "device_name", "train_seconds", "eval_seconds", "gpu_hours")}}
                  for r in chosen]
    return ClaimReport(claim, profile, numbers, relations, verdict, [r["_path"] for r in stale], provenance,
                       chosen, extra, compared,
                       divergence_counts(chosen + current_variants, bound), divergence, variants, variant_numbers,
                       explain(numbers, relations, divergence, variants, verdict, seeds_missing, variant_numbers),
                       in_progress, sum(c.hyperparameters["iterations"] for group in
                                        shared_trainings(claim.run_configs(PAPER)) for c in group[:1]),
                       not_started_runs(claim, runs_of, in_progress, list(costs), across, elsewhere),
                       variant_values(claim, profile or PAPER, by_run, variant_records, compared),
                       current_variants if profile else [],
                       [p for name in claim.body(PAPER)["sensitivity"]
                        for p in sorted(variants_under_way.get(name, []),
                                        key=lambda p: (list(claim.body(PAPER)["runs"]).index(p["run"]), p["seed"]))])


def build_reports(manifest: Manifest, records: list[dict], claim_ids=None, progress: list[dict] = (),
                  costs: list[dict] = ()) -> list[ClaimReport]:
    """Each claim's report; `progress`, the trainings in progress (results.store.load_progress), for what the
    paper profile has done so far; `costs`, the recorded costs (results.costs.load_costs), for what its runs not
    started would cost."""
    ids = claim_ids or list(manifest.claims)
    across, elsewhere = manifest.shared_across_claims(PAPER), claims_under_way(manifest, records, list(progress))
    return [claim_report(manifest.claim(c), records, progress, costs, across, elsewhere) for c in ids]

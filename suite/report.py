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
- results whose config hash differs from the manifest's current config are stale and ignored;
- a relation holds or fails by its margin; while some of its runs are missing, one failed comparison fails it,
  otherwise it is incomplete.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from suite.manifest import PAPER, Claim, Manifest, expand_metrics

REPRODUCED, NOT_REPRODUCED, NOT_RUN = "reproduced", "not reproduced", "not run"
HOLDS, FAILS, INCOMPLETE = "holds", "fails", "incomplete"
GENERATED = "generated data — not a reproduction"


class ResultsError(ValueError):
    """A results file that cannot be read: named, with what is wrong."""


RECORD_KEYS = ("claim", "profile", "run", "seed", "config_hash", "metrics", "provenance", "training")


def load_results(root: Path) -> list[dict]:
    out = []
    for path in sorted(root.glob("*/*/*/seed*/results.json")):
        try:
            record = json.loads(path.read_text())
        except ValueError as e:
            raise ResultsError(f"{path}: not valid JSON ({e}); rerun its claim or remove the file") from None
        missing = [k for k in RECORD_KEYS if not isinstance(record, dict) or k not in record]
        if missing:
            raise ResultsError(f"{path}: not a suite result (no {', '.join(missing)}); rerun its claim or remove it")
        record["_path"] = str(path)
        out.append(record)
    return out


@dataclass
class Measured:
    mean: float
    interval: float | None  # ci95 over episodes (one seed) or std over seeds (several)
    interval_kind: str
    n: int
    seeds: list[int] = field(default_factory=list)
    within: float = 0.0  # several seeds: the mean of their 95% CIs over episodes


def measure(records: list[dict], metric: str) -> Measured | None:
    """One seed: mean ± 95% CI over its episodes; several seeds: mean ± std over the seeds' means."""
    rows = [r for r in records if metric in r["metrics"]]
    if not rows:
        return None
    if len(rows) == 1:
        m = rows[0]["metrics"][metric]
        return Measured(m["mean"], m["ci95"], "ci95-episodes", m["n"], [rows[0]["seed"]])
    means = [r["metrics"][metric]["mean"] for r in rows]
    mean = sum(means) / len(means)
    std = math.sqrt(sum((x - mean) ** 2 for x in means) / (len(means) - 1))
    within = sum(r["metrics"][metric]["ci95"] for r in rows) / len(rows)
    return Measured(mean, std, "std-seeds", len(means), [r["seed"] for r in rows], within)


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


def _fmt(value, interval=None, percent=False):
    """Accuracies as percentages, as papers print them; everything else with 4 significant digits. A measured
    nan (a fine-tuning run that diverged) prints as nan; missing values as —."""
    if value is None:
        return "—"
    if interval is not None and interval != interval:
        interval = None
    if percent:
        return f"{100 * value:.2f}" + (f" ± {100 * interval:.2f}" if interval is not None else "")
    return f"{value:.4g}" + (f" ± {interval:.2g}" if interval is not None else "")


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


def current_records(claim: Claim, records: list[dict], profile: str) -> list[dict]:
    """The results of `profile` whose config hash is the manifest's current one."""
    out = []
    for r in records:
        if r["claim"] != claim.id or r["profile"] != profile or r["run"] not in claim.body(profile)["runs"]:
            continue
        if r["seed"] in claim.body(profile)["seeds"] and \
                r["config_hash"] == claim.run_configs(profile, seeds=[r["seed"]], runs=[r["run"]])[0].hash:
            out.append(r)
    return out


def relation_runs_and_metrics(relation: dict) -> tuple[list[str], list[str]]:
    """The runs a relation names and the metrics it reads of them."""
    return (relation.get("left", []) + relation.get("right", []) + relation.get("runs", []),
            expand_metrics(relation["metrics"]) + expand_metrics(relation.get("right_metrics", [])))


def expectation_metrics(claim: Claim) -> dict[str, list[str]]:
    """Per run, the metrics the claim's published numbers and relations are about."""
    e, out = claim.body(PAPER)["expectations"], {}
    for p in e.get("published", []):
        out.setdefault(p["run"], []).append(p["metric"])
    for r in e.get("relations", []):
        runs, metrics = relation_runs_and_metrics(r)
        for run in runs:
            out.setdefault(run, []).extend(metrics)
    return {run: list(dict.fromkeys(ms)) for run, ms in out.items()}


def write_metrics(root: Path, claim: Claim, profile: str, records: list[dict]):
    """results/metrics/<claim>.<profile>.json: per run, the mean (over seeds) of each metric the claim's
    expectations name, for `dvc metrics show`. Non-finite means (diverged fine-tuning) are written as null."""
    from suite.io import atomic_write_json

    current, summary, wanted = current_records(claim, records, profile), {}, expectation_metrics(claim)
    for run in claim.body(profile)["runs"]:
        rows = [r for r in current if r["run"] == run]
        if rows:
            means = {name: measure(rows, name) for name in wanted.get(run, []) if name in rows[0]["metrics"]}
            summary[run] = {name: m.mean if math.isfinite(m.mean) else None for name, m in means.items()}
            summary.setdefault("provenance", {})[run] = [
                {"seed": r["seed"], "config_hash": r["config_hash"], "git_commit": r["provenance"].get("git_commit"),
                 "device": r["provenance"].get("device"), "results": r["_path"]} for r in rows]
    atomic_write_json(root / "metrics" / f"{claim.id}.{profile}.json", summary)


def build_reports(manifest: Manifest, records: list[dict], claim_ids=None) -> list[ClaimReport]:
    ids = claim_ids or list(manifest.claims)
    return [claim_report(manifest.claim(c), records) for c in ids]


def to_csv(reports: list[ClaimReport]) -> str:
    frames = []
    for rep in reports:
        if len(rep.numbers):
            frames.append(rep.numbers.assign(claim=rep.claim.id, profile=rep.profile, kind="number"))
        if len(rep.compared):
            frames.append(rep.compared.assign(claim=rep.claim.id, profile=rep.profile, kind="measured"))
        if len(rep.relations):
            frames.append(rep.relations.assign(claim=rep.claim.id, profile=rep.profile, kind="relation"))
    if not frames:
        return ""
    df = pd.concat(frames, ignore_index=True)
    first = ["claim", "profile", "kind"]
    return df[first + [c for c in df.columns if c not in first]].to_csv(index=False)


MARKS = {REPRODUCED: "✓", NOT_REPRODUCED: "✗"}


def _number_cells(rep: ClaimReport) -> pd.DataFrame:
    """The numbers table with display strings: accuracies in %, nan for diverged, — for missing."""
    n = rep.numbers.astype(object).where(rep.numbers.notna(), None)
    n.loc[n["verdict"] != NOT_RUN, "measured"] = rep.numbers["measured"]
    n.loc[n["verdict"] != NOT_RUN, "difference"] = rep.numbers["difference"]
    pct = [m.startswith("accuracy") for m in n["metric"]]
    n["published_text"] = [_fmt(v, i, p) for v, i, p in zip(n["published"], n["published ±"], pct)]
    n["measured_text"] = [_fmt(v, i, p) for v, i, p in zip(n["measured"], n["measured ±"], pct)]
    n["difference_text"] = [_fmt(v, percent=p) for v, p in zip(n["difference"], pct)]
    n["allowed_text"] = [_fmt(v, percent=p) for v, p in zip(n["allowed"], pct)]
    return n


def paper_layout(rep: ClaimReport, cell) -> pd.DataFrame:
    """Rows and columns as the paper's table prints them; cell(row of the numbers table) gives each entry."""
    n = _number_cells(rep)
    rows, cols = list(dict.fromkeys(n["row"])), list(dict.fromkeys(n["column"]))
    table = pd.DataFrame("", index=rows, columns=cols)
    for _, r in n.iterrows():
        table.loc[r["row"], r["column"]] = cell(r)
    return table


def compared_table(rep: ClaimReport) -> pd.DataFrame:
    """The compared values laid out run by metric, as display strings (— for a run not run), with what ± is."""
    c = rep.compared
    runs, metrics = list(dict.fromkeys(c["run"])), list(dict.fromkeys(c["metric"]))
    table = pd.DataFrame("—", index=runs, columns=metrics + ["± is"])
    for _, r in c.iterrows():
        if isinstance(r["measured ± means"], str):  # measured (its mean may be nan: diverged fine-tuning)
            table.loc[r["run"], r["metric"]] = _fmt(r["measured"], r["measured ±"], r["metric"].startswith("accuracy"))
            table.loc[r["run"], "± is"] = r["measured ± means"]
    return table


def _value(v) -> str:
    if isinstance(v, dict) and "name" in v:  # an optimiser
        return " ".join([v["name"], f"lr {v['lr']}"] + ([f"betas {v['betas']}"] if "betas" in v else []))
    return str(v)


def protocol_line(claim: Claim, profile: str) -> str:
    """The protocol in one line: task, model, evaluation, the hyperparameters all runs share, and each run's
    algorithm and the hyperparameters in which it differs from the others."""
    body = claim.body(profile)
    t, m, e = body["task"], body["model"], body["evaluation"]
    task = ", ".join(f"{k} {v}" for k, v in t.items() if k not in ("family", "split_sha256"))
    model = ("MLP " + "-".join(map(str, m["hidden"]))) if m["kind"] == "mlp" else \
        f"Conv{m['layers']} ({m['filters']} filters, {m['downsample']}, head {m['head']})"
    opt = e["optimizer"]
    evaluation = (f"{e['tasks']} test tasks (seed {e['seed']}), {e['shots']} shots, {e['queries']} queries, "
                  f"{opt['name']} lr {opt['lr']} for {e['steps'][-1]} steps, batch norm {e['batch_norm']}")
    if "frozen_layers" in e:
        evaluation += f", frozen conv blocks {e['frozen_layers']}"
    runs = body["runs"]
    keys = dict.fromkeys(k for r in runs.values() for k in r if k not in ("algorithm", "task", "evaluation"))
    shared = {k: runs[next(iter(runs))].get(k) for k in keys
              if len(runs) > 1 and all(k in r and r[k] == runs[next(iter(runs))][k] for r in runs.values())}
    per_run = [f"{name}: {r['algorithm']} "
               + ", ".join(f"{k} {_value(r[k])}" for k in keys if k in r and k not in shared)
               for name, r in runs.items()]
    common = ("; all runs: " + ", ".join(f"{k} {_value(v)}" for k, v in shared.items())) if shared else ""
    return (f"Task {t['family']} ({task}); model {model}; evaluation: {evaluation}{common}; runs — "
            + "; ".join(per_run) + ". Per-run task and evaluation overrides: `suite show " + claim.id + "`.")


def compute_spent(reports: list[ClaimReport]) -> str:
    seconds = sum((r["provenance"].get("train_seconds") or 0) + (r["provenance"].get("eval_seconds") or 0)
                  for rep in reports for r in rep.records)
    gpu = sum(r["provenance"].get("gpu_hours") or 0 for rep in reports for r in rep.records)
    return f"{seconds / 3600:.2f} h of compute in the reported runs, {gpu:.2f} of them GPU-hours"


def to_markdown(reports: list[ClaimReport], figures: dict | None = None) -> str:
    """The report; `figures` maps a claim id to image paths relative to where the markdown will be written."""
    counts = pd.Series([r.verdict for r in reports]).value_counts()
    lines = ["# Reproduction report", "",
             "Claims: " + ", ".join(f"{n} {v}" for v, n in counts.items()) + f". {compute_spent(reports)}.", "",
             "| claim | paper | verdict |", "|:--|:--|:--|"]
    lines += [f"| [{r.claim.id}](#{r.claim.id}) | arXiv {r.claim.paper['arxiv']}{r.claim.paper['arxiv_version']}, "
              f"{r.claim.body()['where']} | {r.verdict} |" for r in reports]
    lines.append("")
    for rep in reports:
        c = rep.claim
        body = c.body(PAPER)
        names = c.paper["authors"]
        authors = f"{names[0]} et al." if len(names) > 3 else (", ".join(names[:-1]) + " and " + names[-1]
                                                                 if len(names) > 1 else names[0])
        lines += [f"## {c.id}", "", f"**Verdict: {rep.verdict}.** {c.paper['title']} ({authors}, {c.paper['year']}; "
                  f"arXiv {c.paper['arxiv']}{c.paper['arxiv_version']}), {body['where']}.", "",
                  f"> {body['statement']}", ""]
        if rep.profile and rep.profile != PAPER:
            lines += [f"**Only the `{rep.profile}` profile has been run: these numbers are not a reproduction.**", ""]
        if len(rep.numbers):
            def cell(r):
                if r["verdict"] == NOT_RUN:
                    return f"— (paper {r['published_text']})"
                return f"{r['measured_text']} (paper {r['published_text']}) {MARKS.get(r['verdict'], '')}".strip()
            lines += ["Measured (published) as the paper lays the table out:", "",
                      paper_layout(rep, cell).to_markdown(), ""]
            n = _number_cells(rep)
            table = pd.DataFrame({
                "": n["row"], "column": n["column"], "published": n["published_text"], "± is": n["± means"],
                "measured": n["measured_text"], "measured ± is": [v or "—" for v in n["measured ± means"]],
                "difference": n["difference_text"], "allowed": n["allowed_text"], "verdict": n["verdict"]})
            lines += [table.to_markdown(index=False), ""]
        if len(rep.compared):
            what = "The other measured values the relations compare and the figures draw:" if len(rep.numbers) else \
                "Measured, the values the relations compare and the figures draw:"
            lines += [what, "", compared_table(rep).to_markdown(), ""]
        if len(rep.relations):
            lines += [rep.relations[["relation", "margin", "verdict", "failed comparisons"]].to_markdown(index=False), ""]
        if rep.profile:
            lines += [f"Protocol ({rep.profile}): {protocol_line(c, rep.profile)}", ""]
        for d in rep.diverged:
            lines += [f"Fine-tuning diverged: {d}; a mean over tasks then is not finite.", ""]
        if rep.provenance:
            lines += ["Provenance:", "", pd.DataFrame(rep.provenance).to_markdown(index=False), ""]
        for path in (figures or {}).get(c.id, []):
            lines += [f"![{c.id}: {Path(path).stem}]({path})", ""]
        if (figures or {}).get(c.id):
            from suite.figures import learning_curves_caption

            task = c.body(rep.profile)["task"] if rep.profile else {}
            lines += [f"*Learning curves: {learning_curves_caption(task.get('loss_normalisation'))}*", ""]
        if rep.stale:
            lines += [f"Ignored {len(rep.stale)} stale result(s) from an older configuration.", ""]
        if rep.extra:
            lines += [f"Not judged: {len(rep.extra)} result(s) of seeds the claim does not list "
                      f"({', '.join(sorted({str(r['seed']) for r in rep.extra}))}).", ""]
    return "\n".join(lines)


def _latex_escape(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                 ("±", r"$\pm$"), ("✓", r"\checkmark"), ("✗", r"$\times$"), ("—", "--"), ("→", r"$\to$"),
                 ("≥", r"$\geq$"), ("≤", r"$\leq$"), ("…", r"\ldots{}")):
        text = text.replace(a, b)
    return text


def _latex_table(caption: str, table: pd.DataFrame) -> list[str]:
    out = ["", r"\begin{table}[t]", r"\centering", r"\small", rf"\caption{{{caption}}}",
           r"\begin{tabular}{l" + "c" * len(table.columns) + "}", r"\toprule",
           " & ".join([""] + [_latex_escape(str(x)) for x in table.columns]) + r" \\", r"\midrule"]
    for row, values in table.iterrows():
        out.append(" & ".join([_latex_escape(str(row))] + [_latex_escape(str(v)) for v in values]) + r" \\")
    return out + [r"\bottomrule", r"\end{tabular}", r"\end{table}"]


def to_latex(reports: list[ClaimReport]) -> str:
    """Per claim, one booktabs table of its published numbers, rows and columns as published: measured ± interval
    (published); and one of the other values its relations compare and its figures draw, with the relations'
    verdicts in the caption."""
    out = ["% Generated by `suite report --format latex`; needs \\usepackage{booktabs} (and amssymb for \\checkmark)."]
    for rep in reports:
        c = rep.claim
        source = rf"arXiv {c.paper['arxiv']}{c.paper['arxiv_version']}, {_latex_escape(c.body()['where'])}"
        note = "" if rep.profile in (None, PAPER) else f" Only the {rep.profile} profile was run: not a reproduction."
        if len(rep.numbers):
            def cell(r):
                measured = "--" if r["verdict"] == NOT_RUN else r["measured_text"]
                return f"{measured} ({r['published_text']}) {MARKS.get(r['verdict'], '')}".strip()
            out += _latex_table(rf"{_latex_escape(c.id)}: measured (published), {source}. "
                                rf"Verdict: {_latex_escape(rep.verdict)}.{note}", paper_layout(rep, cell))
        if len(rep.compared):
            verdict = "" if len(rep.numbers) else f" Verdict: {_latex_escape(rep.verdict)}."
            if len(rep.relations):
                verdict += " Relations: " + "; ".join(f"{_latex_escape(r['relation'])}: {_latex_escape(r['verdict'])}"
                                                      for _, r in rep.relations.iterrows()) + "."
            out += _latex_table(rf"{_latex_escape(c.id)}: measured values the relations compare and the figures "
                                rf"draw, {source}.{verdict}{note}", compared_table(rep))
    return "\n".join(out) + "\n"

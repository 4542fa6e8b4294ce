"""The results store: every results.json under results/, read and checked; the current ones of a claim; the mean
of a metric over seeds; and results/metrics/<claim>.<profile>.json for `dvc metrics show`."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from suite.io import atomic_write_json
from suite.protocol import PAPER, Claim
from suite.protocol.manifest import expand_metrics
from suite.training.identity import is_current
from suite.training.parking import where_resumable


class ResultsError(ValueError):
    """A results file that cannot be read: named, with what is wrong."""


RECORD_KEYS = ("claim", "profile", "run", "seed", "config_hash", "metrics", "provenance", "training")


def read_json(path: Path, remedy: str):
    """The JSON in `path`, or one ResultsError naming the file and what to do (`remedy`)."""
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise ResultsError(f"{path}: not valid JSON ({e}); {remedy}") from None


def load_results(root: Path) -> list[dict]:
    out = []
    for path in sorted([*root.glob("*/*/*/seed*/results.json"), *root.glob("*/*/*/seed*/variants/*/results.json")]):
        record = read_json(path, "rerun its claim or remove the file")
        missing = [k for k in RECORD_KEYS if not isinstance(record, dict) or k not in record]
        if missing:
            raise ResultsError(f"{path}: not a suite result (no {', '.join(missing)}); rerun its claim or remove it")
        record["_path"] = str(path)
        out.append(record)
    return out


def load_progress(root: Path, resumable_only: bool = True) -> list[dict]:
    """Every training in progress under results/ (its run's or retraining sensitivity variant's progress.json,
    suite.training.run._write_progress) whose checkpoint is here or parked (suite.training.parking): one whose
    checkpoint went with another machine restarts from its first iteration, so its progress is not progress.
    `variant`: the variant's name, None for a run's own training; `_resumable`: here, parked or None."""
    out = []
    base = root.resolve().parent
    for path in sorted([*root.glob("*/*/*/seed*/progress.json"), *root.glob("*/*/*/seed*/variants/*/progress.json")]):
        record = read_json(path, "rerun its claim or remove the file")
        # progress.json written before it recorded its variant: the folder tells (suite.training.layout)
        variant = record.get("variant", path.parent.name if path.parent.parent.name == "variants" else None)
        record = {**record, "variant": variant, "_path": str(path), "_resumable": where_resumable(base, record)}
        if record["_resumable"] or not resumable_only:
            out.append(record)
    return out


def current_progress(claim: Claim, progress: list[dict], records: list[dict], profile: str) -> list[dict]:
    """The trainings of `profile` in progress by the manifest's current configuration that have no current result,
    in the manifest's run order."""
    done = {(r["run"], r["seed"]) for r in current_records(claim, records, profile)}
    runs = list(claim.body(profile)["runs"])
    mine = [p for p in progress if p["claim"] == claim.id and p["profile"] == profile and not p.get("variant")
            and p["run"] in runs
            and p["seed"] in claim.body(profile)["seeds"] and (p["run"], p["seed"]) not in done
            and is_current(p, claim.run_configs(profile, seeds=[p["seed"]], runs=[p["run"]])[0])]
    return sorted(mine, key=lambda p: (runs.index(p["run"]), p["seed"]))


@dataclass
class Measured:
    mean: float
    interval: float | None  # ci95 over episodes (one seed) or std over seeds (several)
    interval_kind: str
    n: int
    seeds: list[int] = field(default_factory=list)
    within: float = 0.0  # several seeds: the mean of their 95% CIs over episodes
    per_seed: list["Measured"] = field(default_factory=list)  # several seeds: each one's mean ± CI over episodes


def measure(records: list[dict], metric: str) -> Measured | None:
    """One seed: mean ± 95% CI over its episodes; several seeds: mean ± std over the seeds' means."""
    rows = [r for r in records if metric in r["metrics"]]
    if not rows:
        return None
    each = [Measured(r["metrics"][metric]["mean"], r["metrics"][metric]["ci95"],
                     r["metrics"][metric].get("interval_kind", "ci95-episodes"),  # a resource's: exact, or iterations
                     r["metrics"][metric]["n"], [r["seed"]]) for r in rows]
    if len(rows) == 1:
        return each[0]
    means = [m.mean for m in each]
    mean = sum(means) / len(means)
    std = math.sqrt(sum((x - mean) ** 2 for x in means) / (len(means) - 1))
    within = sum(m.interval for m in each) / len(rows)
    return Measured(mean, std, "std-seeds", len(means), [r["seed"] for r in rows], within, each)


def twin_in_claim(record: dict) -> str | None:
    """The run of the record's own claim whose training it was evaluated on (`trained_by` naming a run alone), else
    None. A run evaluated on another claim's training (`trained_by`: `claim/run`) holds that training's iterations
    and curve as its claim's only copy of them, so it counts and draws them as its own."""
    by = record["training"].get("trained_by")
    return by if by and "/" not in by else None


def current_records(claim: Claim, records: list[dict], profile: str) -> list[dict]:
    """The results of `profile` made by the manifest's current configuration and the code's numerics versions
    (the runs themselves; their sensitivity variants are current_variant_records)."""
    out = []
    for r in records:
        if r["claim"] != claim.id or r["profile"] != profile or r["run"] not in claim.body(profile)["runs"] \
                or r.get("variant"):
            continue
        if r["seed"] in claim.body(profile)["seeds"] and \
                is_current(r, claim.run_configs(profile, seeds=[r["seed"]], runs=[r["run"]])[0]):
            out.append(r)
    return out


def current_variant_records(claim: Claim, records: list[dict], profile: str) -> dict[str, list[dict]]:
    """Per sensitivity variant of `profile`, its current results (as current_records)."""
    body, out = claim.body(profile), {}
    configs = {(c.variant, c.run, c.seed): c for c in claim.variant_configs(profile)}
    for r in records:
        cfg = configs.get((r.get("variant"), r["run"], r["seed"]))
        if r["claim"] == claim.id and r["profile"] == profile and cfg is not None and is_current(r, cfg):
            out.setdefault(r["variant"], []).append(r)
    return {name: out[name] for name in body["sensitivity"] if name in out}


def current_variant_progress(claim: Claim, progress: list[dict], variant_records: dict[str, list[dict]],
                             profile: str) -> dict[str, list[dict]]:
    """Per retraining sensitivity variant of `profile`, its trainings in progress by the manifest's current
    configuration (as current_progress) whose run and seed have no current result (`variant_records`, as
    current_variant_records gives them)."""
    configs = {(c.variant, c.run, c.seed): c for c in claim.variant_configs(profile)}
    out = {}
    for p in progress:
        cfg = configs.get((p.get("variant"), p["run"], p["seed"]))
        done = {(r["run"], r["seed"]) for r in variant_records.get(p.get("variant"), [])}
        if (p["claim"] == claim.id and p["profile"] == profile and cfg is not None and is_current(p, cfg)
                and (p["run"], p["seed"]) not in done):
            out.setdefault(p["variant"], []).append(p)
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

"""Recorded costs: what each run of a claim costs on a machine, as `suite plan --record` measured it, kept in
results/costs/<claim>.<profile>.<device type>.json so that the report can say what a claim's unfinished paper runs
still cost (suite.rendering.markdown.progress_section). A record is a measurement with its provenance (the machine,
the commit, when, how many iterations were timed), never a guess; an estimate whose run configuration has changed
since is not current and is not shown.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from suite.io import atomic_write_json
from suite.protocol import Claim
from suite.results.store import ResultsError, read_json

COSTS = "costs"  # the folder under results/
RUN_KEYS = ("run", "config_hashes", "path", "s/it", "curve point s", "test task s", "iterations", "training h",
            "evaluation h")


def costs_path(root: Path, claim: str, profile: str, device_type: str) -> Path:
    return root / COSTS / f"{claim}.{profile}.{device_type}.json"


def write_costs(root: Path, rows: list[dict], profile: str, machine: dict, code: dict, timing: dict) -> list[Path]:
    """One file per claim timed: its runs' rows (suite.training.plan.measure_plan) with the machine (`device`,
    `device_name`, `threads`, `cpus`, and `load`, the 1-minute load average when the timing began), the code (`git_commit`, `git_dirty`) and the timing (`iterations`,
    `warmup`) they were measured with. A claim timed again on the same kind of device replaces its file: the
    newest measurement is the estimate."""
    written = []
    measured = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for claim in dict.fromkeys(r["claim"] for r in rows):
        path = costs_path(root, claim, profile, machine["device"])
        atomic_write_json(path, {"claim": claim, "profile": profile, "measured": measured, **machine, **code,
                                 "timing": timing,
                                 "runs": [{k: r[k] for k in RUN_KEYS} for r in rows if r["claim"] == claim]})
        written.append(path)
    return written


def load_costs(root: Path) -> list[dict]:
    """Every recorded cost file under results/costs/, checked."""
    out = []
    for path in sorted((root / COSTS).glob("*.json")):
        record = read_json(path, "run `suite plan --record` again or remove it")
        missing = [k for k in ("claim", "profile", "device", "device_name", "measured", "runs")
                   if not isinstance(record, dict) or k not in record]
        if missing or not all(isinstance(r, dict) and set(RUN_KEYS) <= set(r) for r in record.get("runs", [])):
            raise ResultsError(f"{path}: not a suite cost record (no {', '.join(missing) or 'run fields'}); run "
                               "`suite plan --record` again or remove it")
        out.append({**record, "_path": str(path)})
    return out


def current_costs(claim: Claim, costs: list[dict], profile: str) -> dict[tuple[str, int], list[dict]]:
    """{(run, seed): [estimate per device type]} for the runs and seeds of `profile` whose recorded configuration
    is the manifest's current one. An estimate is one seed's: {device, device_name, measured, threads, cpus,
    load, git_commit, path, s/it, hours (training and evaluation), training h, evaluation h, trained by}. A run
    whose training is an earlier run's (Claim.trained_by) costs its evaluation alone, whatever was recorded."""
    runs, twins = claim.body(profile)["runs"], claim.trained_by(profile)
    out: dict[tuple[str, int], list[dict]] = {}
    for record in costs:
        if record["claim"] != claim.id or record["profile"] != profile:
            continue
        for row in record["runs"]:
            if row["run"] not in runs:
                continue
            for cfg in claim.run_configs(profile, runs=[row["run"]]):
                if cfg.hash not in row["config_hashes"]:
                    continue
                seeds = len(row["config_hashes"])  # the row's hours are for all of them
                training = 0.0 if cfg.run in twins else row["training h"] / seeds
                out.setdefault((cfg.run, cfg.seed), []).append({
                    "device": record["device"], "device_name": record["device_name"], "measured": record["measured"],
                    "threads": record.get("threads"), "cpus": record.get("cpus"), "load": record.get("load"),
                    "git_commit": record.get("git_commit"), "path": row["path"], "s/it": row["s/it"],
                    "training h": training, "evaluation h": row["evaluation h"] / seeds,
                    "hours": training + row["evaluation h"] / seeds, "trained by": twins.get(cfg.run)})
    return out

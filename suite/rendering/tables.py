"""What every report format shares: number cells (accuracies in %, nan for diverged, — for missing), the paper's
table layout, the compared values, the protocol in one line, and the csv format."""
from __future__ import annotations

import pandas as pd

from suite.protocol import Claim
from suite.protocol.fields import measures_resources
from suite.verdicts.judge import NOT_REPRODUCED, REPRODUCED, NOT_RUN, ClaimReport, duration_text, value_text as _fmt


def to_csv(reports: list[ClaimReport]) -> str:
    frames = []
    for rep in reports:
        if len(rep.numbers):
            frames.append(rep.numbers.assign(claim=rep.claim.id, profile=rep.profile, kind="number"))
        if len(rep.compared):
            frames.append(rep.compared.assign(claim=rep.claim.id, profile=rep.profile, kind="measured"))
        if len(rep.relations):
            frames.append(rep.relations.assign(claim=rep.claim.id, profile=rep.profile, kind="relation"))
        if len(rep.divergence):
            frames.append(rep.divergence.assign(claim=rep.claim.id, profile=rep.profile, kind="divergence"))
        if len(rep.sensitivity):
            frames.append(rep.sensitivity.assign(claim=rep.claim.id, profile=rep.profile, kind="variant"))
        if len(rep.sensitivity_numbers):
            frames.append(rep.sensitivity_numbers.assign(claim=rep.claim.id, profile=rep.profile,
                                                         kind="variant number"))
        if len(rep.sensitivity_values):
            frames.append(rep.sensitivity_values.assign(claim=rep.claim.id, profile=rep.profile, kind="variant value"))
    if not frames:
        return ""
    df = pd.concat(frames, ignore_index=True)
    first = ["claim", "profile", "kind"]
    return df[first + [c for c in df.columns if c not in first]].to_csv(index=False)


MARKS = {REPRODUCED: "✓", NOT_REPRODUCED: "✗"}


def _number_cells(numbers: pd.DataFrame) -> pd.DataFrame:
    """A numbers table with display strings: accuracies in %, nan for diverged, — for missing."""
    n = numbers.astype(object).where(numbers.notna(), None)
    n.loc[n["verdict"] != NOT_RUN, "measured"] = numbers["measured"]
    n.loc[n["verdict"] != NOT_RUN, "difference"] = numbers["difference"]
    pct = [m.startswith("accuracy") for m in n["metric"]]
    n["published_text"] = [_fmt(v, i, p) for v, i, p in zip(n["published"], n["published ±"], pct)]
    n["measured_text"] = [_fmt(v, i, p) for v, i, p in zip(n["measured"], n["measured ±"], pct)]
    n["difference_text"] = [_fmt(v, percent=p) for v, p in zip(n["difference"], pct)]
    n["allowed_text"] = [_fmt(v, percent=p) for v, p in zip(n["allowed"], pct)]
    n["seeds_text"] = [", ".join(_fmt(x, percent=p) for x in v) if isinstance(v, tuple) else "—"
                       for v, p in zip(n["seeds"], pct)]
    return n


def paper_layout(rep: ClaimReport, cell) -> pd.DataFrame:
    """Rows and columns as the paper's table prints them; cell(row of the numbers table) gives each entry."""
    n = _number_cells(rep.numbers)
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
    kinds = {run: {} for run in runs}  # per run, what its values' ± are, in metric order (one kind: said once)
    for _, r in c.iterrows():
        if isinstance(r["measured ± means"], str):  # measured (its mean may be nan: diverged fine-tuning)
            table.loc[r["run"], r["metric"]] = _fmt(r["measured"], r["measured ±"], r["metric"].startswith("accuracy"))
            kinds[r["run"]][r["measured ± means"]] = None
    for run, seen in kinds.items():
        if seen:
            table.loc[run, "± is"] = "; ".join(seen)
    return table


def _value(v) -> str:
    if isinstance(v, dict) and "name" in v:  # an optimiser
        return " ".join([v["name"], f"lr {v['lr']}"] + ([f"betas {v['betas']}"] if "betas" in v else []))
    return str(v)


def selection_text(selection: dict, short: bool = False) -> str:
    """The model a run's numbers come from, in a few words (fewer when `short`)."""
    if selection["rule"] == "last":
        return "last" if short else "the last"
    where = "" if short else f" on {selection['tasks']} validation tasks every {selection['every']} iterations"
    if selection["rule"] == "best-validation":
        return f"best on validation{where}" if short else f"the best{where}"
    return f"top-{selection['k']} ensemble" if short else f"an ensemble of the {selection['k']} best{where}"


def run_selections(claim: Claim, profile: str) -> dict[str, str]:
    """{run: selection_text of its evaluation, short}."""
    body = claim.body(profile)
    return {name: selection_text(cfg.evaluation["selection"], short=True) for name in body["runs"]
            for cfg in claim.run_configs(profile, seeds=body["seeds"][:1], runs=[name])
            if not measures_resources(cfg.evaluation)}


def protocol_line(claim: Claim, profile: str) -> str:
    """The protocol in one line: task, model, evaluation, the hyperparameters all runs share, and each run's
    algorithm and the hyperparameters in which it differs from the others."""
    body = claim.body(profile)
    t, m, e = body["task"], body["model"], body["evaluation"]
    task = ", ".join(f"{k} {v}" for k, v in t.items() if k not in ("family", "split_sha256"))
    model = {"mlp": lambda: "MLP " + "-".join(map(str, m["hidden"])),
             "linear": lambda: f"linear classifier ({'with' if m['bias'] else 'no'} bias)",
             "conv": lambda: f"Conv{m['layers']} ({m['filters']} filters, {m['downsample']}, head {m['head']})"
             }[m["kind"]]()
    if measures_resources(e):
        evaluation = (f"no test tasks: each run measures its {e['measure']} ({e['memory']} memory of the first "
                      "meta-iteration, seconds of the others)")
    else:
        opt = e["optimizer"]
        evaluation = (f"{e['tasks']} test tasks (seed {e['seed']}), {e['shots']} shots, {e['queries']} queries, "
                      f"{opt['name']} lr {opt['lr']} for {e['steps'][-1]} steps, batch norm {e['batch_norm']}, "
                      f"model: {selection_text(e['selection'])}")
    if "frozen_layers" in e:
        evaluation += f", frozen conv blocks {e['frozen_layers']}"
    runs = body["runs"]
    keys = dict.fromkeys(k for r in runs.values() for k in r if k not in ("algorithm", "task", "model", "evaluation"))
    shared = {k: runs[next(iter(runs))].get(k) for k in keys
              if len(runs) > 1 and all(k in r and r[k] == runs[next(iter(runs))][k] for r in runs.values())}
    per_run = [f"{name}: {r['algorithm']} "
               + ", ".join(f"{k} {_value(r[k])}" for k in keys if k in r and k not in shared)
               for name, r in runs.items()]
    common = ("; all runs: " + ", ".join(f"{k} {_value(v)}" for k, v in shared.items())) if shared else ""
    return (f"Task {t['family']} ({task}); model {model}; evaluation: {evaluation}{common}; runs — "
            + "; ".join(per_run) + ". Per-run task, model and evaluation overrides: `suite show " + claim.id + "`.")


def pace(p: dict) -> tuple[float, str]:
    """A training under way's seconds per iteration, and where: its last segment's (on that segment's device), or
    its mean pace where its segments did not record theirs (results.store.load_progress)."""
    paced = [seg for seg in p["segments"] if seg.get("iterations")]
    return (paced[-1]["seconds"] / paced[-1]["iterations"], paced[-1]["device"]) if paced else \
        (p["seconds"] / p["iteration"], "mean")


def seconds_left(p: dict) -> float:
    """What a training under way has left at its pace."""
    return pace(p)[0] * (p["iterations"] - p["iteration"])


def claim_compute(rep: ClaimReport) -> tuple[str, str]:
    """For the summary table: (the compute in the claim's reported results, its variants' and its trainings under
    way, with the GPU-hours among them; what its paper profile has left: its trainings under way at their pace and
    its runs not started at what `suite plan --record` measured, as the progress section gives them)."""
    def total(records: list[dict], *keys: str) -> float:  # of these provenance fields
        return sum(r["provenance"].get(k) or 0 for r in records for k in keys)

    under_way = rep.in_progress + rep.variant_progress
    spent = [(total(rep.records, "train_seconds", "eval_seconds"), ""),
             (total(rep.variant_results, "train_seconds", "eval_seconds"), " variants"),
             (sum(p["seconds"] for p in under_way), " under way")]
    gpu = total(rep.records + rep.variant_results, "gpu_hours") + sum(p["gpu_seconds"] for p in under_way) / 3600
    shown = " + ".join(f"{duration_text(s)}{what}" for s, what in spent if s >= 0.5) or "—"
    left = sum(seconds_left(p) for p in under_way)
    costed = [n for n in rep.not_started if n["estimates"] or n.get("under_way_as")]
    for n in costed:  # the first device measured, as the progress section lists them
        e = (n["estimates"] or [{"evaluation h": 0, "training h": 0}])[0]
        if p := n.get("under_way_as"):  # its training is under way as another claim's run's: at that pace
            left += seconds_left(p) + 3600 * e["evaluation h"]
        else:
            left += 3600 * (e["evaluation h"] + (0 if n.get("trained_by") else e["training h"]))
    missing = len(rep.not_started) - len(costed)
    todo = "; ".join(([duration_text(left)] if left else [])
                     + ([f"{missing} not started, not costed"] if missing else [])) or "—"
    return shown + (f" ({gpu:.2f} GPU-h)" if gpu else ""), todo


def compute_spent(reports: list[ClaimReport]) -> str:
    seconds = sum((r["provenance"].get("train_seconds") or 0) + (r["provenance"].get("eval_seconds") or 0)
                  for rep in reports for r in rep.records)
    gpu = sum(r["provenance"].get("gpu_hours") or 0 for rep in reports for r in rep.records)
    return f"{seconds / 3600:.2f} h of compute in the reported runs, {gpu:.2f} of them GPU-hours"

"""The markdown report: a summary table of verdicts, then per claim its numbers as the paper lays them out, the
relations, the protocol, provenance and figures."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from suite.protocol import PAPER
from suite.protocol.components import families
from suite.rendering.figures import circled_selections, learning_curves_caption, panels_caption
from suite.rendering.tables import (MARKS, _fmt, _number_cells, claim_compute, compared_table, compute_spent, pace,
                                    paper_layout, protocol_line, run_selections, seconds_left)
from suite.verdicts.judge import NOT_RUN, ClaimReport, duration_text


def to_markdown(reports: list[ClaimReport], figures: dict | None = None) -> str:
    """The report; `figures` maps a claim id to image paths relative to where the markdown will be written."""
    counts = pd.Series([r.verdict for r in reports]).value_counts()
    lines = ["# Reproduction report", "",
             "Claims: " + ", ".join(f"{n} {v}" for v, n in counts.items()) + f". {compute_spent(reports)}.", "",
             "| claim | paper | verdict | compute | paper profile left, at the report's pace |",
             "|:--|:--|:--|:--|:--|"]
    lines += [f"| [{r.claim.id}](#{r.claim.id}) | arXiv {r.claim.paper['arxiv']}{r.claim.paper['arxiv_version']}, "
              f"{r.claim.body()['where']} | {r.verdict}{'; ' + r.progress_text() if r.progress_text() else ''} | "
              + " | ".join(claim_compute(r)) + " |" for r in reports]
    lines += ["", "Compute: the train and evaluation time its results record, its sensitivity variants' and its "
              "trainings under way. Left: its paper trainings under way at their last pace and its paper runs not "
              "started at what `suite plan --record` measured (its progress section lists them); a training two "
              "claims share counts under both."]
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
        lines += progress_section(rep)
        if rep.explanation:  # why the verdict is what it is, generated from the tables below
            lines += ["Why:", ""] + [f"- {x}" for x in rep.explanation] + [""]
        if len(rep.numbers):
            def cell(r):
                if r["verdict"] == NOT_RUN:
                    return f"— (paper {r['published_text']})"
                return f"{r['measured_text']} (paper {r['published_text']}) {MARKS.get(r['verdict'], '')}".strip()
            lines += ["Measured (published) as the paper lays the table out:", "",
                      paper_layout(rep, cell).to_markdown(), ""] + printed_section(c)
            n = _number_cells(rep.numbers)
            table = pd.DataFrame({
                "": n["row"], "column": n["column"], "published": n["published_text"], "± is": n["± means"],
                "measured": n["measured_text"], "measured ± is": [v or "—" for v in n["measured ± means"]],
                "difference": n["difference_text"], "allowed": n["allowed_text"], "verdict": n["verdict"]})
            if n["seeds"].notna().any():  # several seeds: each one's mean, and how many are within alone
                table.insert(6, "seeds", n["seeds_text"])
                table.insert(9, "seeds within", [v or "—" for v in n["seeds within"]])
            selections = run_selections(c, rep.profile or PAPER)
            if set(selections.values()) != {"last"}:  # which model each number is of (the protocol line's)
                table.insert(len(table.columns) - 1, "model", [selections.get(run, "—") for run in n["run"]])
            lines += [table.to_markdown(index=False), ""]
        if len(rep.compared):
            drawn = "the relations compare, the figures draw and the claim reports" if \
                rep.claim.body(PAPER)["expectations"].get("reported") else "the relations compare and the figures draw"
            what = f"The other measured values {drawn}:" if len(rep.numbers) else f"Measured, the values {drawn}:"
            lines += [what, "", compared_table(rep).to_markdown(), ""]
        if len(rep.relations):
            lines += [rep.relations[["relation", "margin", "verdict", "failed comparisons"]].to_markdown(index=False), ""]
        if rep.profile:
            lines += [f"Protocol ({rep.profile}): {protocol_line(c, rep.profile)}", ""]
        if body["notes"]:  # the protocol's choices where paper and code differ, and what the sources say
            lines += ["Notes (the manifest's):", ""] + [f"- {note}" for note in body["notes"]] + [""]
        lines += divergence_section(rep) + sensitivity_section(rep)
        if rep.provenance:
            lines += ["Provenance:", "", pd.DataFrame(rep.provenance).to_markdown(index=False), ""]
        for path in (figures or {}).get(c.id, []):
            lines += [f"![{c.id}: {Path(path).stem}]({path})", ""]
        if any(Path(p).stem.endswith("-learning-curves") for p in (figures or {}).get(c.id, [])):
            curves = [r["training"]["curve"] for r in rep.records if "training" in r]
            caption = learning_curves_caption(c.body(rep.profile), curves, circled_selections(rep.records))
            lines += [f"*Learning curves: {caption}*", ""]
        if any(Path(p).stem.endswith("-variant-curves") for p in (figures or {}).get(c.id, [])):
            drawn = rep.records + rep.variant_results
            curves = [r["training"]["curve"] for r in drawn if "training" in r]
            lines += ["*Retraining variants: each variant's own training beside the training of the run and seed it "
                      "retrains (the legend names the variant), the same quantities as the learning curves."
                      f"{panels_caption(curves, circled_selections(drawn))}*", ""]
        if any(Path(p).stem.endswith("-paper-so-far") for p in (figures or {}).get(c.id, [])):
            curves = [p.get("curve", {}) for p in rep.in_progress + rep.variant_progress]
            lines += [f"*Paper trainings in progress, so far: {learning_curves_caption(c.body(PAPER), curves)} Each "
                      "curve ends at its training's last checkpoint (its progress.json).*", ""]
        if rep.stale:
            lines += [f"Ignored {len(rep.stale)} stale result(s) from an older configuration or numerics version.", ""]
        if rep.extra:
            lines += [f"Not judged: {len(rep.extra)} result(s) of seeds the claim does not list "
                      f"({', '.join(sorted({str(r['seed']) for r in rep.extra}))}).", ""]
    return "\n".join(lines)


def progress_section(rep: ClaimReport) -> list[str]:
    """The paper profile's unfinished runs: the trainings under way, its runs' and its retraining sensitivity
    variants' (how far each is, on what it has trained, what is left at its last pace: its last segment's, or its
    mean pace where its segments did not record theirs, and the command that resumes it), and, where
    `suite plan --record` measured what they cost, the runs not started."""
    costed = [n for n in rep.not_started if n["estimates"]]
    under_way = rep.in_progress + rep.variant_progress
    elsewhere = [n["under_way_as"] for n in rep.not_started if n.get("under_way_as")]
    if not under_way and not costed and not elsewhere:
        return []
    def under_way_row(p: dict) -> dict:  # how far a training under way is, on what, and what is left at its pace
        names = sorted({seg["device_name"] for seg in p["segments"] if seg.get("device_name")})
        hours = {"CPU": (p["seconds"] - p["gpu_seconds"]) / 3600, "GPU": p["gpu_seconds"] / 3600}
        return {"run": p["run"], **({"variant": p.get("variant") or "—"} if rep.variant_progress else {}),
                "seed": p["seed"], "path": p["path"], "iterations": f"{p['iteration']:,} of {p['iterations']:,}",
                "trained on": ", ".join(f"{k} {v:.2f} h" for k, v in hours.items() if v > 0) +
                (f" ({'; '.join(names)})" if names else ""),
                "pace, s/it": "{:.3g} ({})".format(*pace(p)), "left at that pace": duration_text(seconds_left(p)),
                "checkpoint": {"parked": "parked (in git)", "here": "this machine's"}.get(p.get("_resumable"), "—")}

    rows = [under_way_row(p) for p in under_way]
    for n in rep.not_started:
        estimates, twin = n["estimates"], n.get("trained_by")
        if p := n.get("under_way_as"):  # its training is under way as another claim's run's, plus its evaluation
            row = under_way_row(p)
            rows.append({**row, "run": n["run"], "seed": n["seed"],
                         "trained on": f"under way as {p['claim']}/{p['run']} (the same training)",
                         "left at that pace": " + ".join([row["left at that pace"]] + [
                             f"{duration_text(3600 * e['evaluation h'])} evaluation" for e in estimates[:1]]),
                         "checkpoint": f"{row['checkpoint']}, {p['claim']}'s"})
            continue
        rows.append({"run": n["run"], **({"variant": "—"} if rep.variant_progress else {}), "seed": n["seed"],
                     "path": "; ".join(e["path"] for e in estimates) or "—",
                     "iterations": f"{twin}'s" if twin else f"0 of {n['iterations']:,}",
                     "trained on": f"{twin}'s training (the same)" if twin else "not started" + (
                         f" (the same training as {', '.join(n['same_training'])})" if n.get("same_training") else ""),
                     "pace, s/it": "—" if twin else
                     "; ".join(f"{e['s/it']:.3g} (plan, {e['device']})" for e in estimates) or "—",
                     "left at that pace": "; ".join(("" if twin else f"{duration_text(3600 * e['training h'])} + ")
                                                    + f"{duration_text(3600 * e['evaluation h'])} evaluation"
                                                    + (f" ({e['device']})" if len(estimates) > 1 else "")
                                                    for e in estimates) or "not measured",
                     "checkpoint": "—"})
    lines = []
    if under_way:
        text = rep.progress_text() or "sensitivity variants' paper trainings in progress"
        both = bool(rep.in_progress and rep.variant_progress)
        resume = ([f"`suite run --claim {rep.claim.id} --profile paper`" + (" (its runs')" if both else "")]
                  if rep.in_progress else []) + [
            f"`suite sensitivity --claim {rep.claim.id} --profile paper --variant {v} --train`"
            + (f" (variant {v}'s)" if both or len(rep.variant_progress) > 1 else "")
            for v in dict.fromkeys(p["variant"] for p in rep.variant_progress)]
        lines.append(f"**{text[0].upper()}{text[1:]}**: these trainings resume with {' and '.join(resume)}, from this "
                     "machine's checkpoints/ or, on any clone, from the copy `suite park` left in "
                     "checkpoints-in-progress/.")
    elif rep.profile == PAPER:  # some paper results, nothing under way
        lines.append(f"**Paper runs left**: `suite run --claim {rep.claim.id} --profile paper` trains them.")
    else:
        lines.append(f"**Paper profile not started**: `suite run --claim {rep.claim.id} --profile paper` trains its "
                     "runs.")
    if costed:
        def spent(device: str) -> str:
            mine = [e for n in costed for e in n["estimates"] if e["device"] == device]
            e = mine[0]
            return (f"{sum(m['hours'] for m in mine):.1f} h "
                    + ("in all" if len(mine) == len(rep.not_started) else f"for {len(mine)} of them")
                    + f" on {device} ({e['device_name']}, {e['threads']} threads, {e['cpus']} cores"
                    + (f", load {e['load']:.1f} when timed" if e.get("load") is not None else "") + "; "
                    f"{e['measured'][:10]}, commit {(e['git_commit'] or 'unknown')[:7]})")

        shared = sum(1 for n in rep.not_started if n.get("trained_by"))
        across = sum(1 for n in rep.not_started if n.get("same_training") and not n.get("trained_by"))
        total = len(rep.not_started)

        def some(n: int, plural: str, singular: str) -> str:  # "it needs", "all of them need", "2 of them need"
            return f"it {singular}" if n == total == 1 else \
                f"{'all' if n == total else n} of them {singular if n == 1 else plural}"

        lines[-1] += (f" {total} of its runs and seeds {'has' if total == 1 else 'have'} not started"
                      + (f" ({some(shared, 'share', 'shares')} an earlier run's training, the same configuration, "
                         f"and {'costs its' if shared == 1 else 'cost their'} evaluation alone)" if shared else "")
                      + (f" ({some(across, 'need', 'needs')} the same training as another claim's run: one training "
                         "serves both, whichever claim trains it first, so the table pays it once)" if across else "")
                      + "; `suite plan --record` "
                      "measured what they cost (a few timed iterations on the run's own path, times the paper's "
                      "iterations, curve points and test tasks): "
                      + "; ".join(spent(d) for d in dict.fromkeys(e["device"] for n in costed for e in n["estimates"]))
                      + ".")
    if elsewhere:
        lines[-1] += (f" {len(elsewhere)} of them {'is' if len(elsewhere) == 1 else 'are'} under way as another "
                      "claim's run, the same training: "
                      + " and ".join(dict.fromkeys(f"`suite run --claim {p['claim']} --profile paper`"
                                                   for p in elsewhere))
                      + f" resumes it, then `suite run --claim {rep.claim.id} --profile paper` evaluates its model.")
    return lines + ["", pd.DataFrame(rows).to_markdown(index=False), ""]


def printed_section(claim) -> list[str]:
    """The other rows the paper's table prints (expectations.printed), as printed, with why they are not run."""
    printed = claim.body(PAPER)["expectations"].get("printed", [])
    if not printed:
        return []
    percent = families()[claim.body(PAPER)["task"]["family"]].LOSS == "cross_entropy"
    table = pd.DataFrame("", index=list(dict.fromkeys(p["row"] for p in printed)),
                         columns=list(dict.fromkeys(p["column"] for p in printed)))
    for p in printed:
        table.loc[p["row"], p["column"]] = _fmt(p["value"], p.get("interval"), percent=percent)
    why = dict.fromkeys(f"{p['row']}: {p['not_run']} ({p['source']})" for p in printed)
    return ["Printed beside them in the paper's table, not run by this claim:", "", table.to_markdown(), ""] + \
        [f"- {w}" for w in why] + [""]


def divergence_section(rep: ClaimReport) -> list[str]:
    """Test tasks whose fine-tuning diverged: counted per step count, run and seed; and for each published number
    they touch, the labelled statistics that explain it."""
    if not len(rep.diverged):
        return []
    d = rep.divergence_rule()
    lines = [f"Diverged test tasks ({d}), by the loss after each step count:", "",
             rep.diverged.to_markdown(index=False), ""]
    if len(rep.divergence):
        t = rep.divergence.copy()
        for col in ("mean, all tasks", "mean, non-diverged tasks", "median, all tasks"):
            t[col] = [_fmt(v, percent=m.startswith("accuracy")) for v, m in zip(t[col], t["metric"])]
        t["published"] = [_fmt(v, percent=m.startswith("accuracy")) for v, m in zip(t["published"], t["metric"])]
        lines += ["The published statistic is the mean over all tasks (the verdict judges it); the others explain "
                  "it (means over seeds):", "",
                  t.drop(columns=["run", "metric"]).rename(columns={"row": ""}).to_markdown(index=False), ""]
    return lines


def sensitivity_section(rep: ClaimReport) -> list[str]:
    """The claim's protocol variants: what each changes, its cost, and its verdict; then the numbers it measured."""
    if not len(rep.sensitivity):
        return []
    lines = ["Protocol sensitivity (each variant's verdict has its runs' results in place of the runs' own; "
             "`suite sensitivity --claim " + rep.claim.id + "` runs them):", "",
             rep.sensitivity.drop(columns=["source", "own_published"]).to_markdown(index=False), ""]
    if len(rep.sensitivity_numbers):
        n = _number_cells(rep.sensitivity_numbers)
        lines += [pd.DataFrame({"variant": [v + (f" (at {m})" if isinstance(m, str) else "")
                                            for v, m in zip(n["variant"], n["judged at"])],
                                "": n["row"], "column": n["column"],
                                "published": n["published_text"], "measured": n["measured_text"],
                                "measured ± is": [v or "—" for v in n["measured ± means"]],
                                "seeds": n["seeds_text"],
                                "difference": n["difference_text"], "allowed": n["allowed_text"],
                                "verdict": n["verdict"]}).to_markdown(index=False), ""]
    if len(rep.sensitivity_values):
        v = rep.sensitivity_values
        lines += ["What the variants measure beyond their runs' own metrics (± as the compared values):", "",
                  pd.DataFrame({"variant": v["variant"], "run": v["run"], "metric": v["metric"],
                                "measured": [_fmt(m, i, metric.startswith("accuracy")) for m, i, metric in
                                             zip(v["measured"], v["measured ±"], v["metric"])],
                                "± is": v["measured ± means"]}).to_markdown(index=False), ""]
    return lines

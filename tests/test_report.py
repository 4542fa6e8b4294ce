"""The reporter's verdicts, on hand-made result records: the rules in suite/report.py's docstring."""
import io
import math
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from suite.protocol.manifest import load_manifest
from suite.rendering.markdown import to_markdown
from suite.rendering.tables import to_csv
from suite.results.store import Measured, load_results
from suite.verdicts.judge import build_reports, check_relation, judge

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def manifest():
    return load_manifest(REPO / "benchmarks.yaml")


def record(manifest, run, profile, means, seed=0, config_hash=None):
    """A results.json as the runner writes it, with per-step means (tiny spread) for the sinusoid claim."""
    claim = manifest.claim("maml-sinusoid")
    cfg = claim.run_configs(profile, seeds=[seed], runs=[run])[0]
    metrics = {f"mse@{s}": {"mean": means(s), "std": 0.1, "ci95": 0.01, "n": 600} for s in range(11)}
    return {"claim": "maml-sinusoid", "profile": profile, "run": run, "seed": seed,
            "config_hash": config_hash or cfg.hash, "metrics": metrics,
            "training": {"iterations": 1, "curve": {"iteration": [], "loss": []}},
            "provenance": {"git_commit": "abc", "git_dirty": False, "device": "cpu", "device_name": "x",
                           "train_seconds": 1.0, "gpu_hours": 0.0}, "_path": f"{run}/{profile}"}


def ablation_record(manifest, run, accuracy):
    """A paper-profile results.json of a reptile-k-ablation run, judged on accuracy@5 alone."""
    cfg = manifest.claim("reptile-k-ablation").run_configs("paper", seeds=[0], runs=[run])[0]
    return {"claim": "reptile-k-ablation", "profile": "paper", "run": run, "seed": 0, "config_hash": cfg.hash,
            "metrics": {"accuracy@5": {"mean": accuracy, "std": 0.4, "ci95": 0.0031, "n": 10000}},
            "training": {"iterations": 1, "curve": {"iteration": [], "loss": []}},
            "provenance": {"git_commit": "abc", "device": "cpu", "train_seconds": 6100.0, "eval_seconds": 1108.0},
            "_path": run}


def paper_like(manifest, profile="paper", maml_scale=1.0):
    maml = {1: 0.67, 5: 0.38, 10: 0.35}
    base = {1: 2.41, 5: 2.23, 10: 2.19}
    return [record(manifest, "maml", profile, lambda s: maml_scale * maml.get(s, 0.5)),
            record(manifest, "pretrained", profile, lambda s: base.get(s, 2.3))]


def verdicts(report):
    return list(report.numbers["verdict"]) + list(report.relations["verdict"])


def test_matching_paper_results_are_reproduced(manifest):
    rep = build_reports(manifest, paper_like(manifest), ["maml-sinusoid"])[0]
    assert rep.verdict == "reproduced"
    assert set(verdicts(rep)) == {"reproduced", "holds"}


def test_a_number_outside_the_tolerance_is_not_reproduced(manifest):
    rep = build_reports(manifest, paper_like(manifest, maml_scale=1.3), ["maml-sinusoid"])[0]
    maml_rows = rep.numbers[rep.numbers["run"] == "maml"]
    assert set(maml_rows["verdict"]) == {"not reproduced"}  # 30% off, tolerance 25%
    assert rep.verdict == "not reproduced"


def test_smoke_results_are_never_called_reproduced(manifest):
    rep = build_reports(manifest, paper_like(manifest, profile="smoke"), ["maml-sinusoid"])[0]
    assert rep.verdict == "smoke only"
    assert all(v.startswith("smoke only") for v in verdicts(rep))
    assert "not a reproduction" in to_markdown([rep])


def test_results_on_generated_data_are_never_a_reproduction_even_when_the_numbers_match(manifest):
    recs = paper_like(manifest)
    recs[1]["provenance"]["data"] = {"dataset": "miniimagenet", "generated": True}
    rep = build_reports(manifest, recs, ["maml-sinusoid"])[0]
    assert rep.verdict == "generated data — not a reproduction"
    assert all(v.startswith("generated data — not a reproduction") for v in verdicts(rep))
    smoke = paper_like(manifest, profile="smoke")
    smoke[0]["provenance"]["data"] = {"dataset": "miniimagenet", "generated": True}
    assert build_reports(manifest, smoke, ["maml-sinusoid"])[0].verdict == "smoke, generated data — not a reproduction"


def test_no_results_means_not_run_and_stale_results_are_ignored(manifest):
    assert build_reports(manifest, [], ["maml-sinusoid"])[0].verdict == "not run"
    stale = [dict(r, config_hash="0" * 16) for r in paper_like(manifest)]
    rep = build_reports(manifest, stale, ["maml-sinusoid"])[0]
    assert rep.verdict == "not run" and len(rep.stale) == 2


def test_a_missing_run_leaves_its_numbers_not_run_and_the_claim_incomplete(manifest):
    rep = build_reports(manifest, paper_like(manifest)[:1], ["maml-sinusoid"])[0]
    assert set(rep.numbers[rep.numbers["run"] == "pretrained"]["verdict"]) == {"not run"}
    assert rep.verdict == "incomplete"


def test_a_relation_that_fails_at_one_step_fails_and_says_where(manifest):
    recs = paper_like(manifest)
    recs[0]["metrics"]["mse@7"]["mean"] = 5.0  # MAML worse than pretrained after 7 steps only
    rep = build_reports(manifest, recs, ["maml-sinusoid"])[0]
    assert rep.relations["verdict"][0] == "fails"
    assert "mse@7" in rep.relations["failed comparisons"][0]


def published(**kw):
    return {"value": 50.0, "interval_kind": "ci95-episodes", "interval": 1.0, **kw}


@pytest.mark.parametrize("expectation, measured, verdict", [
    (published(), Measured(51.2, 0.8, "ci95-episodes", 600), "reproduced"),       # 1.2 ≤ √(1+0.64)=1.28
    (published(), Measured(51.4, 0.8, "ci95-episodes", 600), "not reproduced"),   # 1.4 > 1.28
    (published(interval_kind="std-seeds", interval=0.5, interval_n=3),
     Measured(50.7, 0.5, "std-seeds", 3), "reproduced"),                           # 0.7 ≤ 1.96·√(.25/3+.25/3)=0.80
    (published(interval_kind="std-seeds", interval=0.5, interval_n=3),
     Measured(50.9, 0.5, "std-seeds", 3), "not reproduced"),                       # 0.9 > 0.80
    (published(interval_kind="std-seeds", interval=0.5, interval_n=3),
     Measured(51.1, 0.01, "ci95-episodes", 600), "reproduced"),                    # 1.1 ≤ 1.96·√(.25/3+.25)=1.13
    (published(), Measured(51.0, 0.0, "std-seeds", 2, within=0.5), "reproduced"),  # 1.0 ≤ √(1+.25/2)=1.06
    (published(tolerance={"relative": 0.1, "reason": "r"}), Measured(54.0, 0.1, "ci95-episodes", 600), "reproduced"),
    (published(tolerance={"absolute": 1.0, "reason": "r"}), Measured(51.5, 0.1, "ci95-episodes", 600),
     "not reproduced"),
])
def test_the_verdict_rules(expectation, measured, verdict):
    assert judge(expectation, measured)[0] == verdict


def test_monotone_relations_respect_the_margin():
    by_run = {name: [{"seed": 0, "metrics": {"acc@1": {"mean": m, "ci95": 0, "n": 1}}}]
              for name, m in [("k2", 0.90), ("k3", 0.895), ("k4", 0.93)]}
    rel = {"kind": "nondecreasing", "runs": ["k2", "k3", "k4"], "metrics": ["acc@1"], "margin": 0.01}
    assert check_relation(rel, by_run)[0] == "holds"
    assert check_relation(dict(rel, margin=0.001), by_run)[0] == "fails"


def test_a_relation_with_runs_missing_is_judged_on_the_comparisons_it_can_make():
    def runs(**means):
        return {name: [{"seed": 0, "metrics": {"acc": {"mean": m, "ci95": 0, "n": 1}}}] for name, m in means.items()}
    below = {"kind": "less", "left": ["g1"], "right": ["a", "b", "c"], "metrics": ["acc"], "margin": 0.1}
    assert check_relation(below, runs(g1=0.3, a=0.9)) == (
        "incomplete: held in the 1 comparison measured; 2 runs not run", [])
    assert check_relation(below, runs(g1=0.3, a=0.9, b=0.35)) == ("fails", ["g1 acc 0.3 vs b acc 0.35"])  # for good
    assert check_relation(below, runs(a=0.9, b=0.9)) == ("not run", [])
    assert check_relation(below, runs(g1=0.3, a=0.9, b=0.9, c=0.9)) == ("holds", [])
    grows = {"kind": "nondecreasing", "runs": ["k2", "k3", "k4"], "metrics": ["acc"], "margin": 0.01}
    # only neighbours that are both measured are compared: k2 → k4 across a missing k3 is not a comparison
    assert check_relation(grows, runs(k2=0.9, k4=0.5))[0] == "not run"
    assert check_relation(grows, runs(k2=0.9, k3=0.95))[0].startswith("incomplete: held in the 1 comparison")


def test_csv_has_one_row_per_number_and_relation(manifest, tmp_path):
    for r in paper_like(manifest):
        path = tmp_path / r["claim"] / r["profile"] / r["run"] / "seed0" / "results.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({k: v for k, v in r.items() if k != "_path"}))
    reports = build_reports(manifest, load_results(tmp_path), ["maml-sinusoid"])
    rows = pd.read_csv(io.StringIO(to_csv(reports)))
    assert list(rows["kind"]).count("number") == 6 and list(rows["kind"]).count("relation") == 1
    assert set(rows[rows["kind"].isin(["number", "relation"])]["verdict"]) == {"reproduced", "holds"}
    # the relation's other steps, 2-4 and 6-9, for both runs: values no published number shows
    measured = rows[rows["kind"] == "measured"]
    assert len(measured) == 14 and set(measured["metric"]) == {f"mse@{s}" for s in (2, 3, 4, 6, 7, 8, 9)}


def diverging(manifest, seed=0, bad=(600.0, float("inf"), float("nan"))):
    """A maml result whose per-task values are 0.3 on every test task but the last, whose fine-tuning blows up from
    step 5 on: above the claim's bound (100) at step 5, then inf, then nan. Its metrics summarise its episodes."""
    rec = paper_like(manifest)[0]
    rec["seed"] = seed
    steps = {s: [0.3, 0.3, 0.3, 0.5 if s < 5 else bad[min(s - 5, 2)]] for s in range(11)}
    rec["episodes"] = {f"mse@{s}": values for s, values in steps.items()}
    for s, values in steps.items():
        rec["metrics"][f"mse@{s}"]["mean"] = sum(values) / len(values)
    return rec


def test_a_diverged_task_is_counted_and_left_out_of_the_labelled_statistics_only(manifest):
    rep = build_reports(manifest, [diverging(manifest), paper_like(manifest)[1]], ["maml-sinusoid"])[0]
    # the verdict judges the published statistic, the mean over all tasks: the diverged task stays in it
    maml = rep.numbers[rep.numbers["run"] == "maml"].set_index("metric")
    row = maml.loc["mse@5"]
    assert row["measured"] == pytest.approx((0.9 + 600.0) / 4) and row["verdict"] == "not reproduced"
    assert math.isnan(maml.loc["mse@10", "measured"])
    # counted per step count, from the first step past the bound (a finite 600 counts, as inf and nan do)
    counts = rep.diverged.set_index("run").loc["maml"]
    assert [counts.get(f"mse@{s}", 0) for s in range(11)] == [0] * 5 + [1] * 6 and counts["tasks"] == 4
    # the labelled statistics leave it out (mean) or rank it (median); they explain, they do not judge
    stats = rep.divergence.set_index("metric")
    assert list(stats.index) == ["mse@5", "mse@10"] and stats.loc["mse@5", "diverged"] == "1 of 4"
    assert stats.loc["mse@5", "mean, non-diverged tasks"] == pytest.approx(0.3)
    assert stats.loc["mse@5", "median, all tasks"] == pytest.approx(0.3)
    assert stats.loc["mse@10", "non-diverged mean would be"] == "reproduced"
    assert any("fails through the diverged tasks alone." in line and "mse@10" in line for line in rep.explanation)
    text = to_markdown([rep])
    assert "Diverged test tasks (query loss above 100 or not finite)" in text
    assert "| nan " in text and "mean, non-diverged tasks" in text


def test_a_relation_that_fails_only_through_diverged_tasks_says_so(manifest):
    rec = diverging(manifest)
    rep = build_reports(manifest, [rec, paper_like(manifest)[1]], ["maml-sinusoid"])[0]
    assert rep.relations["verdict"].item().startswith("fails only through diverged test tasks")
    rec = diverging(manifest)
    rec["metrics"]["mse@2"]["mean"] = 5.0  # a failure the diverged task does not explain
    rep = build_reports(manifest, [rec, paper_like(manifest)[1]], ["maml-sinusoid"])[0]
    assert rep.relations["verdict"].item() == "fails"


def test_latex_is_one_booktabs_table_per_claim_laid_out_like_the_paper(manifest):
    from suite.rendering.latex import to_latex

    rep = build_reports(manifest, paper_like(manifest), ["maml-sinusoid"])[0]
    tex = to_latex([rep])
    assert tex.count(r"\begin{tabular}{lccc}") == 1 and r"\toprule" in tex and r"\bottomrule" in tex
    header = next(line for line in tex.splitlines() if line.startswith(" & "))
    assert header == r" & 1 step & 5 steps & 10 steps \\"
    maml = next(line for line in tex.splitlines() if line.startswith("MAML &"))
    assert r"0.67 $\pm$ 0.01 (0.67) \checkmark" in maml


def test_the_metrics_file_holds_the_expectation_metrics_per_run(manifest, tmp_path):
    from suite.results.store import write_metrics

    write_metrics(tmp_path, manifest.claim("maml-sinusoid"), "paper", paper_like(manifest))
    summary = json.loads((tmp_path / "metrics" / "maml-sinusoid.paper.json").read_text())
    assert set(summary) == {"maml", "pretrained", "provenance"}
    assert summary["maml"]["mse@1"] == pytest.approx(0.67) and "mse@0" not in summary["maml"]
    assert summary["provenance"]["maml"][0]["git_commit"] == "abc"


def test_several_seeds_are_compared_by_their_mean_with_the_std_over_seeds(tmp_path):
    import yaml

    from suite.results.store import measure

    raw = yaml.safe_load((REPO / "benchmarks.yaml").read_text())
    raw["claims"]["maml-sinusoid"]["seeds"] = [0, 1, 2]
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(raw))
    manifest = load_manifest(tmp_path / "m.yaml")
    rows = [record(manifest, "maml", "paper", lambda s, v=v: v, seed=seed) for seed, v in [(0, 0.6), (1, 0.7), (2, 0.8)]]
    m = measure(rows, "mse@1")
    assert m.interval_kind == "std-seeds" and m.n == 3 and m.seeds == [0, 1, 2]
    assert m.mean == pytest.approx(0.7) and m.interval == pytest.approx(0.1) and m.within == pytest.approx(0.01)
    rep = build_reports(manifest, rows + paper_like(manifest)[1:], ["maml-sinusoid"])[0]
    assert list(rep.numbers[rep.numbers["run"] == "maml"]["measured ± means"]) == ["std-seeds"] * 3


def test_seeds_that_disagree_with_their_mean_are_counted_and_explained(manifest):
    rows = [record(manifest, "maml", "paper", lambda s, v=v: v * {1: 0.67, 5: 0.38, 10: 0.35}.get(s, 0.5) / 0.67,
                   seed=seed) for seed, v in [(0, 0.4), (1, 0.7), (2, 0.91)]]
    rep = build_reports(manifest, rows + paper_like(manifest)[1:], ["maml-sinusoid"])[0]
    row = rep.numbers[rep.numbers["run"] == "maml"].set_index("metric").loc["mse@1"]
    assert row["measured"] == pytest.approx(0.67) and row["verdict"] == "reproduced"  # the mean's verdict
    assert row["seeds"] == pytest.approx((0.4, 0.7, 0.91)) and row["seeds within"] == "1 of 3"
    assert any("within alone (0.4, 0.7, 0.91)" in line for line in rep.explanation)
    assert any("the seeds disagree: 1 of 3 are within alone" in line and "mse@1" in line for line in rep.explanation)
    assert "seeds within" in to_markdown([rep])


def test_each_seeds_accuracy_is_printed_in_percent_like_the_measured_mean(manifest):
    """anil-omniglot's two seeds at 92.65 and 92.02 %: the seeds column and the explanation print them as the
    measured column does, not as fractions."""
    claim = manifest.claim("anil-omniglot")
    rows = [{"claim": claim.id, "profile": "paper", "run": "anil-n20-k1", "seed": cfg.seed, "config_hash": cfg.hash,
             "metrics": {"accuracy@5": {"mean": mean, "std": 0.06, "ci95": 0.0048, "n": 600}},
             "training": {"iterations": 1, "curve": {"iteration": [], "loss": []}},
             "provenance": {"git_commit": "abc", "device": "cpu", "train_seconds": 1.0}, "_path": f"s{cfg.seed}"}
            for cfg, mean in zip(claim.run_configs("paper", seeds=[0, 1], runs=["anil-n20-k1"]), [0.9265, 0.9602])]
    rep = build_reports(manifest, rows, [claim.id])[0]
    row = rep.numbers[rep.numbers["run"] == "anil-n20-k1"].iloc[0]
    assert row["seeds"] == pytest.approx((0.9265, 0.9602)) and row["seeds within"] == "1 of 2"  # data: fractions
    assert any("are within alone (92.65, 96.02)" in line for line in rep.explanation)
    assert "| 92.65, 96.02 " in to_markdown([rep])
    assert '"(0.9265, 0.9602)"' in to_csv([rep])  # the csv keeps fractions, as its measured column does


def test_a_number_off_the_paper_is_explained_by_its_side_and_by_what_the_variants_measure(manifest):
    claim = manifest.claim("maml-sinusoid")
    cfg = claim.variant_configs("paper", variants=["test-k10"], runs=["maml"])[0]
    maml = {1: 0.67, 5: 0.38, 10: 0.35}
    variant = dict(record(manifest, "maml", "paper", lambda s: maml.get(s, 0.5), config_hash=cfg.hash),
                   variant="test-k10", retrains=False, _path="v")
    rows = paper_like(manifest, maml_scale=1.5) + [variant]  # every MAML mse half as high again as published
    rep = build_reports(manifest, rows, ["maml-sinusoid"])[0]
    said = [line for line in rep.explanation if line.startswith("MAML, 1 step (maml mse@1)")]
    assert said == ["MAML, 1 step (maml mse@1): measured above the published value, by more than allowed; of the "
                    "protocol variants, test-k10 measures it within the allowed difference."]
    low = build_reports(manifest, paper_like(manifest, maml_scale=0.5), ["maml-sinusoid"])[0]
    assert "MAML, 1 step (maml mse@1): measured below the published value, by more than allowed." in low.explanation
    assert not any(line.startswith("pretrain on all tasks") for line in low.explanation)  # reproduced: no sentence


def test_the_report_shows_each_claims_notes(manifest):
    rep = build_reports(manifest, paper_like(manifest), ["maml-sinusoid"])[0]
    text = to_markdown([rep])
    assert "Notes (the manifest's):" in text
    assert all(f"- {note}" in text for note in manifest.claim("maml-sinusoid").body()["notes"])


def test_seeds_the_claim_does_not_list_are_reported_but_not_judged(manifest):
    extra = record(manifest, "maml", "paper", lambda s: 99.0, seed=0)
    extra["seed"] = 7
    rep = build_reports(manifest, paper_like(manifest) + [extra], ["maml-sinusoid"])[0]
    assert rep.verdict == "reproduced" and len(rep.extra) == 1 and not rep.stale
    assert "Not judged: 1 result(s) of seeds the claim does not list (7)" in to_markdown([rep])


def test_the_figures_are_those_the_reported_runs_draw_and_an_outdated_one_is_removed(manifest, tmp_path):
    from suite.rendering.figures import claim_figures

    claim = manifest.claim("reptile-k-ablation")
    specs = claim.body()["figures"]

    def rec(run, accuracy):
        return {"run": run, "seed": 0, "training": {"curve": {"iteration": [1, 2], "loss": [1.0, 0.9]}},
                "metrics": {"accuracy@5": {"mean": accuracy, "std": 0.4, "ci95": 0.01, "n": 10000}}}

    smoke = claim_figures(claim.id, "smoke", [rec(run, 0.5) for run in claim.body()["runs"]], tmp_path, specs)
    assert [p.name for p in smoke] == [f"{claim.id}-learning-curves.png"] + [
        f"{claim.id}-figure-{i}.png" for i in range(1, len(specs) + 1)]
    (tmp_path / "other-claim-figure-2.png").write_bytes(b"")
    paper = claim_figures(claim.id, "paper", [rec("g1", 0.28)], tmp_path, specs)  # §6.2's k = 1 alone
    assert [p.name for p in paper] == [f"{claim.id}-learning-curves.png", f"{claim.id}-figure-1.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([p.name for p in paper] + ["other-claim-figure-2.png"])


def test_a_figure_series_breaks_its_line_at_a_run_with_no_result(manifest):
    from suite.rendering.figures import series_points

    points = [("g1", 1, "acc"), ("g4", 4, "acc"), ("g3", 3, "acc"), ("g2", 2, "acc")]  # not in x order
    records = [{"run": run, "seed": 0, "metrics": {"acc": {"mean": mean, "ci95": 0.01, "n": 10}}}
               for run, mean in [("g1", 0.28), ("g4", 0.95)]]
    xs, ys, errs = series_points(points, records)
    assert xs == [1, 2, 3, 4] and errs == [0.01, 0.0, 0.0, 0.01]
    assert ys[0] == 0.28 and ys[3] == 0.95 and all(math.isnan(y) for y in ys[1:3])


def test_a_claim_judged_on_relations_alone_prints_the_values_it_compares(manifest, tmp_path):
    from suite.rendering.latex import to_latex

    claim = manifest.claim("reptile-k-ablation")
    rep = build_reports(manifest, [ablation_record(manifest, "g4", 0.954), ablation_record(manifest, "g1", 0.279)],
                        [claim.id])[0]
    assert not len(rep.numbers) and rep.verdict == "incomplete"
    text = to_markdown([rep])
    assert "Measured, the values the relations compare and the figures draw:" in text
    table = text.split("the figures draw:")[1].split("\n\n")[1].splitlines()
    rows = {line.split("|")[1].strip(): line for line in table[2:]}
    assert "27.90 ± 0.31" in rows["g1"] and "95.40 ± 0.31" in rows["g4"] and "—" in rows["g2"]
    assert list(rows) == list(claim.body()["runs"])  # each run a relation compares or a figure draws, in order
    assert rep.provenance[0]["eval_seconds"] == 1108.0  # the cost of a run is its training and its evaluation
    tex = to_latex([rep])  # before, a claim with no published numbers had no table at all
    assert r"g4 & 95.40 $\pm$ 0.31 & ci95-episodes \\" in tex and r"k $\geq$ 2" in tex
    assert "Verdict: incomplete. Relations: g1 alone" in tex
    csv = pd.read_csv(io.StringIO(to_csv([rep])))
    measured = csv[csv["kind"] == "measured"].set_index("run")
    assert measured.loc["g1", "measured"] == pytest.approx(0.279) and math.isnan(measured.loc["g2", "measured"])


def test_each_run_keeps_one_distinct_style_in_both_learning_curve_panels(manifest, monkeypatch, tmp_path):
    import suite.rendering.figures as figures

    runs = list(manifest.claim("reptile-k-ablation").body()["runs"])  # 23 runs: more than one colour cycle

    def rec(i, run):
        curve = {"iteration": [1, 2], "loss": [1.0 + i, 0.9 + i]}
        if i % 2:  # only some runs log test tasks, so the right panel's runs are not the left's
            curve["test"] = {"metric": "accuracy@5", "iteration": [1, 2], "value": [0.5, 0.6]}
        return {"run": run, "seed": 0, "training": {"curve": curve}}

    drawn = {}
    monkeypatch.setattr(figures, "_save", lambda fig, path: drawn.setdefault("fig", fig))
    figures.learning_curves("reptile-k-ablation", "paper", [rec(i, r) for i, r in enumerate(runs)], tmp_path / "x.png")
    left, right = drawn["fig"].axes
    style = [(line.get_color(), line.get_linestyle()) for line in left.get_lines()]
    assert len(set(style)) == len(runs)
    assert [(line.get_color(), line.get_linestyle()) for line in right.get_lines()] == style[1::2]
    assert [t.get_text() for t in drawn["fig"].legends[0].get_texts()] == runs


def test_a_series_figure_ticks_the_settings_its_runs_use(manifest, monkeypatch, tmp_path):
    import suite.rendering.figures as figures

    spec = manifest.claim("reptile-k-ablation").body()["figures"][2]  # inner batch sizes 25, 50 and 75
    records = [{"run": "reptile-k4", "seed": 0, "metrics": {"accuracy@5": {"mean": 0.9, "ci95": 0.01, "n": 10}}}]
    drawn = {}
    monkeypatch.setattr(figures, "_save", lambda fig, path: drawn.setdefault("fig", fig))
    figures.series_figure("reptile-k-ablation", "paper", spec, records, tmp_path / "x.png")
    assert list(drawn["fig"].axes[0].get_xticks()) == [25, 50, 75]


def test_the_learning_curve_caption_says_when_the_loss_is_summed_over_the_images(manifest):
    summed = ablation_record(manifest, "g1", 0.28)
    reports = build_reports(manifest, [summed] + paper_like(manifest), ["reptile-k-ablation", "maml-sinusoid"])
    text = to_markdown(reports, {"reptile-k-ablation": ["figures/reptile-k-ablation-learning-curves.png"],
                                 "maml-sinusoid": ["figures/maml-sinusoid-learning-curves.png"]})
    captions = [line for line in text.splitlines() if line.startswith("*Learning curves:")]
    assert len(captions) == 2
    assert "summed, not averaged" in captions[0]  # supervised-reptile's loss: 75 images in §6.3, 25 for g1
    assert "support loss of φ before the update, also for the first-order MAML it runs with meta_direction " \
        "last-step" in captions[0]  # §6.3's first-order MAML lines: each algorithm's LOGGED_LOSS
    assert "summed" not in captions[1]  # the sinusoid MSE is a mean


def test_a_flat_test_curve_gets_a_readable_axis_not_float_noise(monkeypatch, tmp_path):
    import suite.rendering.figures as figures

    curve = {"iteration": [2, 4], "loss": [1.0, 0.9],
             "test": {"metric": "accuracy@5", "iteration": [2, 4], "value": [0.6000000238, 0.6000000089]}}
    records = [{"run": "g3", "seed": 0, "training": {"curve": curve}}]
    drawn = {}
    monkeypatch.setattr(figures, "_save", lambda fig, path: drawn.setdefault("fig", fig))
    figures.learning_curves("reptile-k-ablation", "smoke", records, tmp_path / "x.png")
    low, high = drawn["fig"].axes[1].get_ylim()
    assert high - low >= 0.1 and low < 0.6 < high


def test_a_training_two_runs_share_is_one_curve_named_for_both_with_whole_iterations(monkeypatch, tmp_path):
    import suite.rendering.figures as figures

    curve = {"iteration": [1, 2, 3], "loss": [1.0, 0.9, 0.8]}
    records = [{"run": "n5-k1", "seed": 0, "training": {"curve": curve}},
               {"run": "n5-k5", "seed": 0, "training": {"curve": curve, "trained_by": "n5-k1"}},
               {"run": "n20-k1", "seed": 0, "training": {"curve": {"iteration": [1, 2, 3], "loss": [3.0, 2.9, 2.8]}}}]
    drawn = {}
    monkeypatch.setattr(figures, "_save", lambda fig, path: drawn.setdefault("fig", fig))
    figures.learning_curves("omniglot-reptile", "smoke", records, tmp_path / "x.png")
    ax, = drawn["fig"].axes
    assert len(ax.get_lines()) == 2
    assert [t.get_text() for t in drawn["fig"].legends[0].get_texts()] == ["n5-k1 = n5-k5", "n20-k1"]
    drawn["fig"].canvas.draw()
    assert all(float(t).is_integer() for t in ax.get_xticks())


def test_variants_that_share_one_training_are_one_curve_named_for_all(monkeypatch, tmp_path):
    """(maml-sinusoid's code-inner-lr and code-protocol retrain maml alike: one training_hash.) One curve, named
    after both variants, not one drawn exactly over the other under two legend entries; another seed's stays apart."""
    import suite.rendering.figures as figures

    def rec(variant, seed, training_hash, loss):
        curve = {"iteration": [1, 2], "loss": loss}
        return {"run": "maml", "seed": seed, "variant": variant,
                "training": {"curve": curve, "training_hash": training_hash}}

    records = [rec(None, 0, "a", [1.0, 0.9]), rec("code-inner-lr", 0, "b", [1.0, 0.5]),
               rec("code-protocol", 0, "b", [1.0, 0.5]), rec("code-protocol", 1, "c", [1.0, 0.6])]
    drawn = {}
    monkeypatch.setattr(figures, "_save", lambda fig, path: drawn.setdefault("fig", fig))
    figures.learning_curves("maml-sinusoid", "paper", records, tmp_path / "x.png", variants=True)
    assert [t.get_text() for t in drawn["fig"].legends[0].get_texts()] == [
        "maml (seed 0)", "maml, variants code-inner-lr = code-protocol (seed 0)",
        "maml, variant code-protocol (seed 1)"]
    assert len(drawn["fig"].axes[0].get_lines()) == 3


def test_the_snapshot_a_validation_selected_is_circled_on_its_validation_curve(monkeypatch, tmp_path):
    """(anil-omniglot's best-validation evaluates the snapshot that did best on the validation tasks.) The validation
    panel circles it, where the run's own curve (the last model, no selection by validation) has none; the title over
    both panels names the claim, the loss panel's its quantity alone; the caption says what the circle is."""
    import suite.rendering.figures as figures

    validation = {"iteration": [1000, 2000, 3000], "value": [0.5, 0.7, 0.6], "metric": "accuracy@5"}
    records = [{"run": "anil", "seed": 0, "training": {"curve": {"iteration": [1, 2], "loss": [2.0, 1.0]}},
                "selection": {"rule": "last", "iterations": [3000]}},
               {"run": "anil", "seed": 0, "variant": "best-validation",
                "training": {"curve": {"iteration": [1, 2], "loss": [2.0, 1.1], "validation": validation}},
                "selection": {"rule": "best-validation", "iterations": [2000],
                              "validation": {"metric": "accuracy@5", "values": [0.7]}}}]
    drawn = {}
    monkeypatch.setattr(figures, "_save", lambda fig, path: drawn.setdefault("fig", fig))
    figures.learning_curves("anil-omniglot", "paper", records, tmp_path / "x.png", variants=True)
    loss, panel = drawn["fig"].axes
    assert drawn["fig"]._suptitle.get_text() == \
        "anil-omniglot: training loss (paper profile, retraining variants beside their runs)"
    assert loss.get_title() == "training loss"
    curve, circle = panel.get_lines()
    assert list(curve.get_ydata()) == [0.5, 0.7, 0.6]
    assert (list(circle.get_xdata()), list(circle.get_ydata()), circle.get_marker()) == ([2000], [0.7], "o")
    assert circle.get_color() == curve.get_color()
    assert figures.circled_selections(records) and not figures.circled_selections(records[:1])
    curves = [r["training"]["curve"] for r in records]
    assert figures.panels_caption(curves, True).endswith(
        " A circle marks the snapshot (or snapshots) a run's evaluation selected on them.")
    assert "circle" not in figures.panels_caption(curves)


def test_paper_trainings_under_way_draw_their_curves_so_far_until_they_finish(manifest, monkeypatch, tmp_path):
    import suite.rendering.figures as figures

    claim = manifest.claim("omniglot-reptile")
    curve = {"iteration": [100, 200, 300], "loss": [5.0, 4.0, 3.5]}
    under_way = [{"run": "n5-k1", "seed": 0, "curve": curve},
                 {"run": "fomaml-n5-k1", "seed": 0},  # a progress.json of older code: no curve, nothing drawn
                 {"run": "n5-k1", "seed": 1, "variant": "some-variant",  # a variant's: named after it
                  "curve": {**curve, "validation": {"metric": "accuracy@3", "iteration": [100, 200],
                                                    "value": [0.5, 0.6]}}}]  # it selects by validation
    drawn = {}
    save = figures._save
    monkeypatch.setattr(figures, "_save", lambda fig, path: drawn.setdefault(path.name, fig) and save(fig, path))
    made = figures.claim_figures(claim.id, "smoke", [], tmp_path, (), under_way, claim.trained_by("paper"))
    assert [p.name for p in made] == ["omniglot-reptile-paper-so-far.png"]
    fig = drawn["omniglot-reptile-paper-so-far.png"]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [  # n5-k5 is evaluated on the run's training
        "n5-k1 = n5-k5 (seed 0)", "n5-k1, variant some-variant (seed 1)"]
    assert "paper profile, so far" in fig._suptitle.get_text()  # over the loss and validation panels
    assert list(fig.axes[0].get_lines()[0].get_xdata()) == [100, 200, 300]
    loss, validation = fig.axes  # its validation accuracy, in a panel of its own, unsmoothed
    assert validation.get_title() == "validation tasks during training (they select the model)"
    assert validation.get_ylabel() == "validation accuracy@3"
    assert [list(line.get_ydata()) for line in validation.get_lines()] == [[0.5, 0.6]]

    rep = build_reports(manifest, [], ["omniglot-reptile"], [])[0]
    text = to_markdown([rep], {claim.id: [f"figures/{p.name}" for p in made]})
    assert "*Paper trainings in progress, so far: the training loss each run logs" in text
    assert "Beside the training loss" not in text  # no training under way here draws another panel
    caption = figures.learning_curves_caption(claim.body("paper"), [p.get("curve", {}) for p in under_way])
    assert caption.endswith(" Beside the training loss, the metric its axis names on the validation tasks that "
                            "select the model a run is evaluated with (evaluation.selection).")

    assert figures.claim_figures(claim.id, "smoke", [], tmp_path, (), [], claim.trained_by("paper")) == []
    assert not list(tmp_path.iterdir())  # finished: the curves so far are gone with them


def test_a_retraining_variants_curve_is_drawn_beside_its_runs_own(manifest, monkeypatch, tmp_path):
    """(maml-sinusoid's code-inner-lr retrains maml.) Its training loss is drawn beside maml's, the same seed, in a
    figure of its own, named after the variant; an evaluation-only variant (test-k10) has no training to draw, and
    with no retrained variant left the figure goes."""
    import suite.rendering.figures as figures

    claim = manifest.claim("maml-sinusoid")
    own = paper_like(manifest)
    own[0]["training"]["curve"] = {"iteration": [1, 2, 3], "loss": [1.0, 0.8, 0.7]}
    hashes = {v: claim.variant_configs("paper", variants=[v], runs=["maml"], seeds=[0])[0].hash
              for v in ("code-inner-lr", "test-k10")}
    retrained = dict(record(manifest, "maml", "paper", lambda s: 0.5, config_hash=hashes["code-inner-lr"]),
                     variant="code-inner-lr", retrains=True, _path="v/inner")
    retrained["training"] = {"iterations": 3, "curve": {"iteration": [1, 2, 3], "loss": [1.0, 0.6, 0.4]}}
    evaluated = dict(record(manifest, "maml", "paper", lambda s: 0.5, config_hash=hashes["test-k10"]),
                     variant="test-k10", retrains=False, _path="v/k10")
    rep = build_reports(manifest, own + [retrained, evaluated], ["maml-sinusoid"])[0]
    assert rep.variant_results == [retrained, evaluated]
    drawn = {}
    save = figures._save
    monkeypatch.setattr(figures, "_save", lambda fig, path: drawn.setdefault(path.name, fig) and save(fig, path))
    made = figures.claim_figures(claim.id, rep.profile, rep.records, tmp_path, variant_results=rep.variant_results)
    assert "maml-sinusoid-variant-curves.png" in [p.name for p in made]
    fig = drawn["maml-sinusoid-variant-curves.png"]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["maml", "maml, variant code-inner-lr"]
    lines = fig.axes[0].get_lines()
    assert [list(line.get_ydata()) for line in lines] == [[1.0, 0.8, 0.7], [1.0, 0.6, 0.4]]
    assert lines[0].get_color() != lines[1].get_color()
    text = to_markdown([rep], {claim.id: [f"figures/{p.name}" for p in made]})
    assert "*Retraining variants: each variant's own training beside the training of the run" in text
    figures.claim_figures(claim.id, rep.profile, rep.records, tmp_path)
    assert not (tmp_path / "maml-sinusoid-variant-curves.png").exists()


def test_what_a_variant_measures_beyond_its_runs_own_metrics_is_reported(manifest):
    """A variant with more test-time steps (mse@20) shows those values; the metrics its runs measure too, and
    metrics of a family the claim does not judge, are not repeated."""
    claim = manifest.claim("maml-sinusoid")
    paper = claim.variant_configs("paper", variants=["test-k10"], runs=["maml"])[0]
    variant = dict(record(manifest, "maml", "paper", lambda s: 0.1, config_hash=paper.hash), variant="test-k10",
                   retrains=False, _path="v/paper")
    variant["metrics"] = {**variant["metrics"], "mse@20": {"mean": 0.05, "std": 0.1, "ci95": 0.01, "n": 600},
                          "seconds@20": {"mean": 3.0, "std": 0.1, "ci95": 0.01, "n": 600}}
    rep = build_reports(manifest, paper_like(manifest) + [variant], ["maml-sinusoid"])[0]
    v = rep.sensitivity_values
    assert list(zip(v["variant"], v["run"], v["metric"], v["measured"])) == [("test-k10", "maml", "mse@20", 0.05)]
    assert "| test-k10  | maml  | mse@20   | 0.05 ± 0.01 | ci95-episodes |" in to_markdown([rep])


def test_a_variant_with_its_own_published_numbers_is_judged_on_them_and_never_reproduces_the_claim(tmp_path):
    """(omniglot-maml's first-order is judged against Reptile's '1st-order MAML' row, not MAML's.) Its verdict says
    so, and the explanation of the claim's own verdict neither counts it as reproducing nor places the claim's
    number by it."""
    raw = yaml.safe_load((REPO / "benchmarks.yaml").read_text())
    raw["claims"]["maml-sinusoid"]["sensitivity"]["test-k10"]["published"] = [
        {"run": "maml", "metric": "mse@10", "row": "other paper", "column": "10 steps", "value": 0.5,
         "interval": 0.02, "interval_kind": "ci95-episodes", "source": "another table"}]
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    manifest = load_manifest(tmp_path / "m.yaml")
    variants = [dict(record(manifest, cfg.run, "paper", lambda s: 0.5 if cfg.run == "maml" else 2.3, seed=cfg.seed,
                            config_hash=cfg.hash),
                     variant="test-k10", retrains=False, _path=f"v/{cfg.run}/{cfg.seed}")
                for cfg in manifest.claim("maml-sinusoid").variant_configs("paper", variants=["test-k10"])]
    bad = paper_like(manifest, maml_scale=10.0)  # the claim's own numbers: not reproduced
    rep = build_reports(manifest, bad + variants, ["maml-sinusoid"])[0]
    assert rep.verdict == "not reproduced"
    assert rep.sensitivity.set_index("variant").loc["test-k10", "verdict"] == \
        "reproduced (against its own published numbers)"
    shown = rep.sensitivity_numbers[rep.sensitivity_numbers["variant"] == "test-k10"]
    assert list(shown["row"]) == ["other paper"] and list(shown["verdict"]) == ["reproduced"]
    text = " ".join(rep.explanation)
    assert "would reproduce it" not in text and "test-k10 measures" not in text


def test_a_variant_judged_at_another_metric_judges_the_claims_numbers_there_and_says_which(tmp_path):
    """(anil-omniglot's test-steps-10 judges ANIL's published accuracy at cbfinn/maml's 10 test-time steps.) Here
    test-k10 judges the claim's mse@1 at mse@10: reproduced there though its own mse@1 is far off, and the table and
    the explanation of the claim's verdict name the metric; its runs' other numbers keep theirs."""
    raw = yaml.safe_load((REPO / "benchmarks.yaml").read_text())
    raw["claims"]["maml-sinusoid"]["sensitivity"]["test-k10"]["judged_at"] = {"mse@1": "mse@10"}
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    manifest = load_manifest(tmp_path / "m.yaml")
    variants = [dict(record(manifest, cfg.run, "paper", lambda s: (0.67 if s == 10 else 10.0) if cfg.run == "maml"
                            else 2.3, seed=cfg.seed, config_hash=cfg.hash),
                     variant="test-k10", retrains=False, _path=f"v/{cfg.run}/{cfg.seed}")
                for cfg in manifest.claim("maml-sinusoid").variant_configs("paper", variants=["test-k10"])]
    rep = build_reports(manifest, paper_like(manifest, maml_scale=1.5) + variants, ["maml-sinusoid"])[0]
    shown = rep.sensitivity_numbers[(rep.sensitivity_numbers["variant"] == "test-k10")
                                    & (rep.sensitivity_numbers["run"] == "maml")].set_index("column")
    assert (shown.loc["1 step", "metric"], shown.loc["1 step", "verdict"]) == ("mse@10", "reproduced")
    assert shown.loc["1 step", "judged at"] == "mse@10" and not isinstance(shown.loc["5 steps", "judged at"], str)
    assert (shown.loc["5 steps", "metric"], shown.loc["5 steps", "verdict"]) == ("mse@5", "not reproduced")
    assert ("MAML, 1 step (maml mse@1): measured above the published value, by more than allowed; of the protocol "
            "variants, test-k10 (at mse@10) measures it within the allowed difference.") in rep.explanation
    assert "| test-k10 (at mse@10) | MAML " in to_markdown([rep])


def test_a_retraining_variant_under_way_is_reported_in_progress_not_as_the_claims_progress(manifest):
    """A sensitivity variant's own training (code-inner-lr retrains maml) shows how far it is in the sensitivity
    table, while the claim's "paper in progress" counts its runs' trainings only."""
    claim = manifest.claim("maml-sinusoid")
    cfg = claim.variant_configs("paper", variants=["code-inner-lr"], runs=["maml"], seeds=[0])[0]
    assert cfg.retrains
    under_way = dict(progress_record(manifest, "maml", 2000), variant="code-inner-lr", config_hash=cfg.hash)
    rep = build_reports(manifest, paper_like(manifest), ["maml-sinusoid"], [under_way])[0]
    row = rep.sensitivity.set_index("variant").loc["code-inner-lr"]
    assert row["verdict"] == "in progress (2,000 of 70,000 iterations)" and row["seeds measured"] == 0
    assert rep.in_progress == [] and rep.progress_text() is None
    assert rep.sensitivity.set_index("variant").loc["test-lr-code", "verdict"] == "not run"
    text = to_markdown([rep])  # the progress section lists it, with the command that resumes it
    assert ("**Sensitivity variants' paper trainings in progress**: these trainings resume with `suite sensitivity "
            "--claim maml-sinusoid --profile paper --variant code-inner-lr --train`, from") in text
    row = next(line for line in text.splitlines() if line.startswith("| maml ") and "2,000 of 70,000" in line)
    assert "| code-inner-lr " in row and "parked (in git)" in row
    mine = [progress_record(manifest, "pretrained", 500)]  # beside a run's own training: both, each its command
    rep = build_reports(manifest, paper_like(manifest, profile="smoke"), ["maml-sinusoid"], mine + [under_way])[0]
    assert [p["run"] for p in rep.in_progress] == ["pretrained"] and rep.variant_progress == [under_way]
    text = to_markdown([rep])
    assert ("these trainings resume with `suite run --claim maml-sinusoid --profile paper` (its runs') and `suite "
            "sensitivity --claim maml-sinusoid --profile paper --variant code-inner-lr --train` (variant "
            "code-inner-lr's)") in text
    assert next(line for line in text.splitlines() if line.startswith("| pretrained ")).startswith(
        "| pretrained | —  ")
    older = dict(under_way, config_hash="an-older-configuration")  # of another configuration: not progress
    rep = build_reports(manifest, paper_like(manifest), ["maml-sinusoid"], [older])[0]
    assert rep.sensitivity.set_index("variant").loc["code-inner-lr", "verdict"] == "not run"


def test_a_retraining_variants_cost_is_its_own_measured_training_once_it_has_one(manifest):
    """Before code-inner-lr has a result its cost is estimated from its run's own training time; once it has, the
    table gives its own measured training time per seed (here 40 s against its run's 1 s)."""
    claim = manifest.claim("maml-sinusoid")
    cfg = claim.variant_configs("paper", variants=["code-inner-lr"], runs=["maml"], seeds=[0])[0]
    cost = lambda records: build_reports(manifest, records, ["maml-sinusoid"])[0].sensitivity.set_index(  # noqa: E731
        "variant").loc["code-inner-lr", "cost"]
    assert cost(paper_like(manifest)) == "retrains: ≈1 s per seed (its runs' own training time)"
    mine = record(manifest, "maml", "paper", lambda s: 0.5, config_hash=cfg.hash)
    mine = dict(mine, variant="code-inner-lr", retrains=True, _path="v/paper",
                provenance=dict(mine["provenance"], train_seconds=40.0))
    assert cost(paper_like(manifest) + [mine]) == "retrains: 40 s per seed, measured"


def test_a_retraining_variants_estimate_sums_its_runs_and_takes_the_plan_for_runs_not_trained(tmp_path):
    """(anil-omniglot's best-validation retrains four runs, one of them trained: the others' plan, 170 h, not four
    times the trained one's 6 h.) A variant over maml (trained in 1 s) and pretrained (not trained; the plan says
    0.5 h a seed) costs their sum, naming where each part comes from, or names what nothing costs; once the variant
    has trained one run, the others' estimate follows its measured time."""
    raw = yaml.safe_load((REPO / "benchmarks.yaml").read_text())
    raw["claims"]["maml-sinusoid"]["sensitivity"]["tasks-10000"]["changes"] = {"iterations": 10}  # retrains both
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    manifest = load_manifest(tmp_path / "m.yaml")
    maml_only = paper_like(manifest)[:1]

    def cost(costs, variant_records=()):
        rep = build_reports(manifest, maml_only + list(variant_records), ["maml-sinusoid"], [], costs)[0]
        return rep.sensitivity.set_index("variant").loc["tasks-10000", "cost"]

    assert cost([cost_record(manifest)]) == \
        "retrains: ≈30 min per seed (its runs' own training time: maml; `suite plan`: pretrained)"
    assert cost([]) == "retrains: ≈1 s per seed (its runs' own training time: maml), not costed: pretrained"
    cfg = manifest.claim("maml-sinusoid").variant_configs("paper", variants=["tasks-10000"], runs=["maml"],
                                                          seeds=[0])[0]
    mine = record(manifest, "maml", "paper", lambda s: 0.5, config_hash=cfg.hash)
    mine = dict(mine, variant="tasks-10000", retrains=True, _path="v/paper",
                provenance=dict(mine["provenance"], train_seconds=40.0))  # its own training of maml, measured
    assert cost([cost_record(manifest)], [mine]) == ("retrains: 40 s per seed, measured (maml; not yet pretrained, "
                                                     "≈30 min more per seed by `suite plan`: pretrained)")


def test_a_variant_result_is_reported_with_its_profile_and_stale_only_when_no_profile_makes_it(manifest):
    claim = manifest.claim("maml-sinusoid")
    smoke = claim.variant_configs("smoke", variants=["test-k10"], runs=["maml"])[0]
    paper = claim.variant_configs("paper", variants=["test-k10"], runs=["maml"])[0]
    variant = lambda cfg, value: dict(record(manifest, "maml", cfg.profile, lambda s: value, config_hash=cfg.hash),
                                      variant="test-k10", retrains=False, _path=f"v/{cfg.profile}")  # noqa: E731
    rep = build_reports(manifest, paper_like(manifest) + [variant(smoke, 9.0), variant(paper, 0.1)],
                        ["maml-sinusoid"])[0]
    assert rep.stale == []  # the smoke variant's result is current for the smoke profile
    row = rep.sensitivity.set_index("variant").loc["test-k10"]
    assert row["seeds measured"] == 1 and row["cost"] == "evaluation only"
    shown = rep.sensitivity_numbers[rep.sensitivity_numbers["variant"] == "test-k10"]
    assert set(shown[shown["run"] == "maml"]["measured"]) == {0.1}  # the paper profile's, not smoke's
    assert set(shown[shown["run"] == "pretrained"]["verdict"]) == {"not run"}  # its other run: not measured
    old = dict(variant(paper, 0.1), config_hash="0" * 16, _path="v/old")
    assert build_reports(manifest, paper_like(manifest) + [old], ["maml-sinusoid"])[0].stale == ["v/old"]


def test_the_rest_of_the_papers_table_is_shown_as_printed_with_why_it_is_not_run(manifest):
    from suite.rendering.markdown import printed_section

    lines = "\n".join(printed_section(manifest.claim("imaml-omniglot")))
    assert "| MAML " in lines and "98.70 ± 0.40" in lines and "99.50 ± 0.26" in lines
    assert "- iMAML, Hessian-free: not built" in lines
    assert printed_section(manifest.claim("maml-sinusoid")) == []


def progress_record(manifest, run, iteration, config_hash=None, segments=None, claim="maml-sinusoid"):
    """A progress.json as the runner writes it while a paper training is under way."""
    from suite.training.identity import numerics
    cfg = manifest.claim(claim).run_configs("paper", seeds=[0], runs=[run])[0]
    return {"claim": claim, "profile": "paper", "run": run, "seed": 0,
            "config_hash": config_hash or cfg.hash, "numerics": numerics(cfg), "path": "grouped",
            "iteration": iteration, "iterations": cfg.hyperparameters["iterations"], "seconds": 3600.0 + 360.0,
            "gpu_seconds": 360.0, "checkpoint": "checkpoints/x", "_resumable": "parked",
            "segments": segments or [{"device": "cpu", "device_name": "x86_64", "from_iteration": 0},
                                     {"device": "cuda", "device_name": "NVIDIA H200", "from_iteration": 1000,
                                      "iterations": 1000, "seconds": 360.0}]}


def test_paper_trainings_in_progress_are_reported_with_how_far_and_what_is_left(manifest):
    smoke = paper_like(manifest, profile="smoke")
    progress = [progress_record(manifest, "maml", 2000),
                progress_record(manifest, "pretrained", 500, config_hash="an-older-configuration")]
    rep = build_reports(manifest, smoke, ["maml-sinusoid"], progress)[0]
    assert rep.verdict == "smoke only" and [p["run"] for p in rep.in_progress] == ["maml"]  # the stale one is not
    total = sum(c.hyperparameters["iterations"] for c in manifest.claim("maml-sinusoid").run_configs("paper"))
    assert rep.progress_text() == f"paper in progress (2,000 of {total:,} iterations)"
    text = to_markdown([rep])
    assert f"| smoke only; paper in progress (2,000 of {total:,} iterations) |" in text
    row = next(line for line in text.splitlines() if line.startswith("| maml "))
    left = 0.36 * (70000 - 2000) / 3600  # the last segment's pace: 1000 iterations in 360 s
    assert "2,000 of 70,000" in row and "CPU 1.00 h, GPU 0.10 h (NVIDIA H200; x86_64)" in row
    assert "0.36 (cuda)" in row and f"{left:.1f} h" in row and "parked (in git)" in row

    summary = next(line for line in text.splitlines() if line.startswith("| [maml-sinusoid]"))
    # its smoke results' 2 s and the training's 3,960 s (360 on GPU); left: 68,000 iterations at 0.36 s, and the
    # five runs and seeds not started, which no `suite plan --record` costed
    assert summary.endswith("| 2 s + 66 min under way (0.10 GPU-h) | 6.8 h; 5 not started, not costed |")

    finished = paper_like(manifest)  # once a run has its paper result, its progress is not reported
    rep = build_reports(manifest, finished, ["maml-sinusoid"], progress)[0]
    assert rep.in_progress == [] and rep.progress_text() is None


def test_regression_examples_put_at_most_four_runs_side_by_side(monkeypatch, tmp_path):
    import suite.rendering.figures as figures

    saved = {}
    monkeypatch.setattr(figures, "_save", lambda fig, path: saved.setdefault("fig", fig) and path)

    def rec(run):
        example = {"x": [0.0, 1.0], "y": [0.0, 1.0], "support_x": [0.5], "support_y": [0.5],
                   "predictions": {"0": [0.0, 0.0], "1": [0.1, 0.9]}}
        return {"run": run, "seed": 0, "examples": [example, example]}

    runs = [f"r{i}" for i in range(6)]
    figures.regression_examples("c", "paper", [rec(r) for r in runs], tmp_path / "c.png")
    fig = saved["fig"]
    shown = [ax for ax in fig.axes if ax.axison]
    assert len(fig.axes) == 4 * 4 and len(shown) == 6 * 2  # two bands of two example rows; two empty columns
    grid = [[ax.get_title() for ax in fig.axes[row * 4:(row + 1) * 4]] for row in range(4)]
    assert grid[0] == [f"r{i}, test task 0" for i in range(4)] and grid[1][3] == "r3, test task 1"
    assert grid[2][:2] == ["r4, test task 0", "r5, test task 0"] and grid[3][1] == "r5, test task 1"
    assert [ax.axison for ax in fig.axes[8:]] == [True, True, False, False] * 2


def cost_record(manifest, hashes=None, device="cpu"):
    """A results/costs file as `suite plan --record` writes it, for maml-sinusoid's paper runs."""
    claim = manifest.claim("maml-sinusoid")
    runs = []
    for name in claim.body("paper")["runs"]:
        configs = claim.run_configs("paper", runs=[name])
        runs.append({"run": name, "config_hashes": (hashes or {}).get(name, [c.hash for c in configs]),
                     "path": "grouped", "s/it": 0.002, "curve point s": 0.0, "test task s": 0.01,
                     "iterations": 70000, "training h": 0.5 * len(configs), "evaluation h": 0.25 * len(configs)})
    return {"claim": "maml-sinusoid", "profile": "paper", "measured": "2026-12-01T19:00:00+00:00",
            "device": device, "device_name": "x86_64", "threads": 2, "cpus": 2, "git_commit": "abcdef0123",
            "git_dirty": False, "timing": {"iterations": 3, "warmup": 3}, "runs": runs}


def test_paper_runs_not_started_are_reported_with_what_the_recorded_plan_says_they_cost(manifest):
    smoke = paper_like(manifest, profile="smoke")
    rep = build_reports(manifest, smoke, ["maml-sinusoid"], [], [])[0]
    seeds = [0, 1, 2]  # the paper profile's
    assert [(n["run"], n["seed"]) for n in rep.not_started] == [(r, s) for r in ("maml", "pretrained") for s in seeds]
    assert "Paper profile not started" not in to_markdown([rep])  # nothing measured: no section

    rep = build_reports(manifest, smoke, ["maml-sinusoid"], [], [cost_record(manifest)])[0]
    text = to_markdown([rep])
    assert "**Paper profile not started**" in text and "6 of its runs and seeds have not started" in text
    assert "4.5 h in all on cpu (x86_64, 2 threads, 2 cores; 2026-12-01, commit abcdef0)" in text
    assert next(line for line in text.splitlines() if line.startswith("| [maml-sinusoid]")).endswith(
        "| 2 s | 4.5 h |")  # the summary table's left: what the plan measured
    row = next(line for line in text.splitlines() if line.startswith("| pretrained ") and " of 70,000 " in line)
    assert "0 of 70,000" in row and "0.002 (plan, cpu)" in row and "30 min + 15 min evaluation" in row

    progress = [progress_record(manifest, "maml", 2000)]  # maml under way: its own pace; pretrained from the plan
    stale = dict(cost_record(manifest, hashes={"pretrained": ["an-older-configuration"]}, device="cuda"), load=1.96)
    rep = build_reports(manifest, smoke, ["maml-sinusoid"], progress, [cost_record(manifest), stale])[0]
    assert [(n["run"], n["seed"]) for n in rep.not_started] == [("maml", 1), ("maml", 2)] + [
        ("pretrained", s) for s in seeds]
    assert [e["device"] for e in rep.not_started[-1]["estimates"]] == ["cpu"]  # the stale cuda estimate is not
    assert [e["device"] for e in rep.not_started[0]["estimates"]] == ["cpu", "cuda"]  # maml's is current on both
    text = to_markdown([rep])
    assert "**Paper in progress" in text and "5 of its runs and seeds have not started" in text
    assert "on cuda (x86_64, 2 threads, 2 cores, load 2.0 when timed; " in text  # a busy machine's timing says so
    assert "3.8 h in all on cpu" in text and "1.5 h for 2 of them on cuda" in text  # pretrained's is stale on cuda
    maml = [line for line in text.splitlines() if line.startswith("| maml ") and " of 70,000 " in line]
    assert len(maml) == 3 and "2,000 of 70,000" in maml[0] and "0 of 70,000" in maml[1]
    assert "30 min + 15 min evaluation (cpu); 30 min + 15 min evaluation (cuda)" in maml[1]

    finished = paper_like(manifest)  # seed 0 of each run has its paper result
    rep = build_reports(manifest, finished, ["maml-sinusoid"], [], [cost_record(manifest)])[0]
    assert [(n["run"], n["seed"]) for n in rep.not_started] == [(r, s) for r in ("maml", "pretrained") for s in (1, 2)]
    assert "**Paper runs left**" in to_markdown([rep])


def test_a_cost_record_that_cannot_be_read_is_named(tmp_path):
    from suite.results.costs import load_costs
    from suite.results.store import ResultsError

    folder = tmp_path / "costs"
    folder.mkdir()
    (folder / "maml-sinusoid.paper.cpu.json").write_text("{")
    with pytest.raises(ResultsError, match=r"maml-sinusoid\.paper\.cpu\.json: not valid JSON"):
        load_costs(tmp_path)
    (folder / "maml-sinusoid.paper.cpu.json").write_text(json.dumps({"claim": "maml-sinusoid", "runs": []}))
    with pytest.raises(ResultsError, match=r"not a suite cost record \(no profile, device, device_name, measured\)"):
        load_costs(tmp_path)


def test_a_run_that_shares_an_earlier_runs_training_costs_its_evaluation_alone(manifest):
    """omniglot-reptile's 5-shot runs are evaluated on their 1-shot twins' trainings: the report counts each training
    once, in the iterations the paper profile trains and in the hours left, whatever the plan recorded."""
    from suite.training.identity import numerics

    claim = manifest.claim("omniglot-reptile")
    runs = []
    for name in claim.body("paper")["runs"]:
        cfg, = claim.run_configs("paper", runs=[name])
        runs.append({"run": name, "config_hashes": [cfg.hash], "path": "grouped", "s/it": 0.2, "curve point s": 0.0,
                     "test task s": 0.1, "iterations": cfg.hyperparameters["iterations"], "training h": 5.0,
                     "evaluation h": 0.25})
    costs = {"claim": "omniglot-reptile", "profile": "paper", "measured": "2026-12-01T19:00:00+00:00", "device": "cpu",
             "device_name": "x86_64", "threads": 2, "cpus": 2, "git_commit": "abcdef0123", "git_dirty": False,
             "timing": {"iterations": 3, "warmup": 3}, "runs": runs}
    cfg, = claim.run_configs("paper", runs=["n5-k1"])
    progress = {"claim": "omniglot-reptile", "profile": "paper", "run": "n5-k1", "seed": 0, "config_hash": cfg.hash,
                "numerics": numerics(cfg), "path": "grouped", "iteration": 50000, "iterations": 100000,
                "seconds": 10000.0, "gpu_seconds": 0.0, "checkpoint": "checkpoints/x", "_resumable": "parked",
                "segments": [{"device": "cpu", "device_name": "x86_64", "from_iteration": 0, "iterations": 50000,
                              "seconds": 10000.0}]}
    rep = build_reports(manifest, [], ["omniglot-reptile"], [progress], [costs])[0]
    assert rep.progress_text() == "paper in progress (50,000 of 600,000 iterations)"  # four trainings, not eight
    twins = {n["run"]: n["trained_by"] for n in rep.not_started}
    assert twins == {"n5-k5": "n5-k1", "n20-k1": None, "n20-k5": "n20-k1", "fomaml-n5-k1": None,
                     "fomaml-n5-k5": "fomaml-n5-k1", "fomaml-n20-k1": None, "fomaml-n20-k5": "fomaml-n20-k1"}
    text = to_markdown([rep])
    assert "7 of its runs and seeds have not started (4 of them share an earlier run's training" in text
    assert "16.8 h in all on cpu" in text  # 3 trainings of 5 h and 7 evaluations of 0.25 h
    row = next(line for line in text.splitlines() if line.startswith("| n20-k5 "))
    assert "n20-k1's training (the same)" in row and "| 15 min evaluation " in row


def test_runs_that_need_another_claims_training_are_marked_as_one_training(manifest):
    """omniglot-maml's n5-k5 and freeze-layer-omniglot's n5-k5 train alike (the same training configuration and seed;
    only the evaluation differs): each claim's runs not started name the other, so the table pays it once."""
    across = manifest.shared_across_claims("paper")
    assert across[("omniglot-maml", "n5-k5", 0)] == ["freeze-layer-omniglot/n5-k5"]
    assert across[("freeze-layer-omniglot", "n5-k5", 0)] == ["omniglot-maml/n5-k5"]
    assert across[("anil-omniglot", "maml-n20-k1", 0)] == ["omniglot-maml/n20-k1"]
    assert ("anil-omniglot", "maml-n20-k1", 1) not in across  # omniglot-maml trains seed 0 alone
    assert not any(claim == "omniglot-reptile" for claim, _, _ in across)  # its twins are its own
    claim = manifest.claim("freeze-layer-omniglot")
    runs = [{"run": name, "config_hashes": [c.hash for c in claim.run_configs("paper", runs=[name])], "path": "loop",
             "s/it": 1.0, "curve point s": 0.0, "test task s": 0.1, "iterations": 60000, "training h": 16.7,
             "evaluation h": 0.1} for name in claim.body("paper")["runs"]]
    costs = {"claim": claim.id, "profile": "paper", "measured": "2026-12-01T19:00:00+00:00", "device": "cpu",
             "device_name": "x86_64", "threads": 2, "cpus": 2, "git_commit": "abcdef0123", "git_dirty": False,
             "timing": {"iterations": 3, "warmup": 3}, "runs": runs}
    rep = build_reports(manifest, [], [claim.id], [], [costs])[0]
    assert {n["run"]: n["same_training"] for n in rep.not_started} == {
        "n5-k1": ["omniglot-maml/n5-k1"], "n5-k5": ["omniglot-maml/n5-k5"]}
    text = to_markdown([rep])
    assert "2 of its runs and seeds have not started (all of them need the same training as another claim's run: " \
        "one training serves both" in text
    row = next(line for line in text.splitlines() if line.startswith("| n5-k5 "))
    assert "not started (the same training as omniglot-maml/n5-k5)" in row
    progress = progress_record(manifest, "n5-k1", 100, claim=claim.id)  # under way: one run left, singular
    text = to_markdown(build_reports(manifest, [], [claim.id], [progress], [costs]))
    assert "1 of its runs and seeds has not started (it needs the same training as another claim's run" in text

    # omniglot-maml's report: its n5-k1 is under way as freeze-layer-omniglot's (one training), not "not started":
    # how far, at that training's pace, and the two commands, the one that resumes it and the one that evaluates it
    other = build_reports(manifest, [], ["omniglot-maml"], [progress], [])[0]
    assert [n["under_way_as"] is progress for n in other.not_started] == [True, False, False, False]
    text = to_markdown([other])
    row = next(line for line in text.splitlines() if line.startswith("| n5-k1 "))
    assert "100 of 60,000" in row and "under way as freeze-layer-omniglot/n5-k1 (the same training)" in row
    assert "0.36 (cuda)" in row and "parked (in git), freeze-layer-omniglot's" in row
    assert "1 of them is under way as another claim's run, the same training: `suite run --claim " \
        "freeze-layer-omniglot --profile paper` resumes it, then `suite run --claim omniglot-maml --profile paper` " \
        "evaluates its model." in text
    summary = next(line for line in text.splitlines() if line.startswith("| [omniglot-maml]"))
    assert summary.endswith(f"| {0.36 * (60000 - 100) / 3600:.1f} h; 3 not started, not costed |")  # at its pace

"""`suite bench`: a run's own evaluation settings reach the bench, and its learning-curve points are timed apart."""
from dataclasses import replace
from pathlib import Path

import pytest

from suite.protocol.manifest import load_manifest
from suite.training.bench import REFERENCE, _measure, bench_configs, flop_floor

REPO = Path(__file__).resolve().parents[1]


def test_bench_runs_keep_their_own_learning_curve_setting():
    configs = {cfg.run: cfg for cfg in bench_configs(load_manifest(REPO / "benchmarks.yaml"), "reptile-k-ablation")}
    # §6.2's runs take a curve point after every meta-iteration; §6.3's record none.
    assert configs["g3"].evaluation["during_training"] == {"every": 1, "tasks": 1, "seed": 1}
    assert not configs["shared-full"].evaluation.get("during_training")


def test_curve_points_are_timed_apart_from_the_training_step(tmp_path):
    cfg = next(c for c in bench_configs(load_manifest(REPO / "benchmarks.yaml"), "maml-sinusoid") if c.run == "fomaml")
    cfg = replace(cfg, evaluation={k: v for k, v in cfg.evaluation.items() if k != "during_training"})
    without = _measure(cfg, "cpu", "loop", 4, None, tmp_path, 1)
    assert without["curve point ms/it"] == 0.0
    every_2 = replace(cfg, evaluation={**cfg.evaluation, "during_training": {"every": 2, "tasks": 2, "seed": 1}})
    with_curve = _measure(every_2, "cpu", "grouped", 4, None, tmp_path, 1)
    assert with_curve["curve point ms/it"] > 0.0
    assert with_curve["ms/it"] > 0.0


@pytest.mark.parametrize("run", ["maml", "reptile"])
def test_the_plain_pytorch_reference_loops_train_on_the_bench_tasks(run, tmp_path):
    cfg = next(c for c in bench_configs(load_manifest(REPO / "benchmarks.yaml"), "maml-sinusoid") if c.run == run)
    measured = _measure(cfg, "cpu", "loop", 2, REFERENCE, tmp_path, 1)
    assert measured["ms/it"] > 0.0 and measured["CPU ms/it"] > 0.0


def test_the_flop_floor_counts_the_second_order_terms(tmp_path):
    configs = {c.run: c for c in bench_configs(load_manifest(REPO / "benchmarks.yaml"), "maml-sinusoid")}
    second, first = flop_floor(configs["maml"], "cpu", tmp_path, 1), flop_floor(configs["fomaml"], "cpu", tmp_path, 1)
    assert second["GFLOP a step"] > 1.5 * first["GFLOP a step"] > 0  # the double backward is counted
    assert second["floor ms"] > 0 and second["GFLOP/s"] > 0


def test_the_omniglot_bench_times_the_claims_own_task_shape():
    configs = {cfg.run: cfg for cfg in bench_configs(load_manifest(REPO / "benchmarks.yaml"), "omniglot-maml")}
    assert configs["maml"].hyperparameters["queries"] == 1 and configs["maml"].hyperparameters["meta_batch"] == 32


def test_a_plan_multiplies_what_it_times_by_what_the_paper_run_does():
    from suite.training.plan import run_cost

    cfg = load_manifest(REPO / "benchmarks.yaml").claim("reptile-k-ablation").run_configs(runs=["g3"])[0]
    cost = run_cost(cfg, {"step": 0.05, "curve point": 0.1, "test task": 0.06})
    iterations = cfg.hyperparameters["iterations"]  # a curve point after every one of them
    assert cost["training h"] * 3600 == pytest.approx(iterations * 0.05 + iterations * 0.1)
    assert cost["evaluation h"] * 3600 == pytest.approx(cfg.evaluation["tasks"] * 0.06)
    sinusoid = load_manifest(REPO / "benchmarks.yaml").claim("maml-sinusoid").run_configs(runs=["pretrained"])[0]
    search = sinusoid.evaluation["lr_search"]  # the baseline's lr search fine-tunes its validation tasks too
    cost = run_cost(sinusoid, {"step": 0.001, "curve point": 0.0, "test task": 0.01})
    tasks = sinusoid.evaluation["tasks"] + len(search["candidates"]) * search["tasks"]
    assert cost["evaluation h"] * 3600 == pytest.approx(tasks * 0.01)


def test_suite_plan_times_a_claims_paper_runs_on_their_own_paths(tmp_path):
    from click.testing import CliRunner

    from suite.cli import main

    results = tmp_path / "results"
    out = CliRunner().invoke(main, ["--results", str(results), "plan", "--claim", "maml-sinusoid", "--iterations",
                                    "1", "--warmup", "0", "--device", "cpu", "--record"])
    assert out.exit_code == 0, out.output
    assert "| maml-sinusoid | maml " in out.output and "| grouped " in out.output and "All: " in out.output

    from suite.results.costs import load_costs  # --record: the measurement, with where and when it was made
    (recorded,) = load_costs(results)
    assert recorded["claim"] == "maml-sinusoid" and recorded["device"] == "cpu" and recorded["timing"]["iterations"] == 1
    assert recorded["load"] >= 0 and recorded["cpus"] >= 1
    assert [r["run"] for r in recorded["runs"]] == ["maml", "pretrained"] and len(recorded["runs"][0]["config_hashes"]) == 3
    report = CliRunner().invoke(main, ["--results", str(results), "report", "--claim", "maml-sinusoid"])
    assert report.exit_code == 0, report.output
    assert "**Paper profile not started**" in report.output and "(plan, cpu)" in report.output


def test_suite_plan_counts_a_training_two_claims_share_once(monkeypatch):
    """omniglot-maml's n5-k1 and n5-k5 are freeze-layer-omniglot's n5-k1 and n5-k5 (the same training): planned
    together, each claim's table is its own cost, each run names the other, and the total counts the training once."""
    import torch

    from suite.training import plan

    monkeypatch.setattr(plan, "measure_run", lambda cfg, *args: {"path": "loop", "step": 1.0, "curve point": 0.0,
                                                                  "test task": 0.0})
    manifest = load_manifest(REPO / "benchmarks.yaml")
    rows = plan.measure_plan(manifest, ["omniglot-maml", "freeze-layer-omniglot"], torch.device("cpu"), Path("."), 1,
                             0, log=lambda msg: None)
    by = {(r["claim"], r["run"]): r for r in rows}
    freeze = by["freeze-layer-omniglot", "n5-k5"]
    assert freeze["same training"] == ["omniglot-maml/n5-k5"] and freeze["training h"] == 60000 / 3600
    assert freeze["planned already"] == freeze["training h"] and by["omniglot-maml", "n5-k5"]["planned already"] == 0
    assert by["omniglot-maml", "n20-k1"]["same training"] == ["anil-omniglot/maml-n20-k1"]
    text = plan.plan_text(rows, torch.device("cpu"), 1, 0)
    assert "freeze-layer-omniglot / n5-k5: the same training as omniglot-maml/n5-k5; one training serves both" in text
    total = sum(r["training h"] + r["evaluation h"] for r in rows)
    assert f"All: {total - 2 * 60000 / 3600:.3g} h" in text and "the trainings two claims share counted once" in text

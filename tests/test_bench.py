"""`suite bench`: a run's own evaluation settings reach the bench, and its learning-curve points are timed apart."""
from dataclasses import replace
from pathlib import Path

from suite.training.bench import _measure, bench_configs
from suite.protocol.manifest import load_manifest

REPO = Path(__file__).resolve().parents[1]


def test_bench_runs_keep_their_own_learning_curve_setting():
    configs = {cfg.run: cfg for cfg in bench_configs(load_manifest(REPO / "benchmarks.yaml"), "reptile-k-ablation")}
    # §6.2's runs take a curve point after every meta-iteration; §6.3's record none.
    assert configs["g3"].evaluation["during_training"] == {"every": 1, "tasks": 1, "seed": 1}
    assert not configs["shared-full"].evaluation.get("during_training")


def test_curve_points_are_timed_apart_from_the_training_step(tmp_path):
    cfg = next(c for c in bench_configs(load_manifest(REPO / "benchmarks.yaml"), "maml-sinusoid") if c.run == "fomaml")
    cfg = replace(cfg, evaluation={k: v for k, v in cfg.evaluation.items() if k != "during_training"})
    without = _measure(cfg, "cpu", False, 4, False, tmp_path, 1)
    assert without["curve point ms/it"] == 0.0
    every_2 = replace(cfg, evaluation={**cfg.evaluation, "during_training": {"every": 2, "tasks": 2, "seed": 1}})
    with_curve = _measure(every_2, "cpu", False, 4, False, tmp_path, 1)
    assert with_curve["curve point ms/it"] > 0.0
    assert with_curve["ms/it"] > 0.0

"""Claims about resources (suite.training.resources; iMAML's memory figure): the tensor count is exact, it sees MAML's
memory grow with the inner steps and iMAML's stay flat, a relation may compare with a multiple of its right side,
and the manifest checks a resource claim's runs and metrics."""
import copy

import pytest
import torch
import yaml

from suite.algorithms import fomaml, imaml, maml
from suite.training.resources import resource_metrics, tensor_peak
from suite.verdicts.judge import check_relation
from test_gradients import conv_with_batch_norm, float64  # noqa: F401 (float64: autouse)
from test_imaml import hp
from test_manifest import MANIFEST, error_of, load


def test_tensor_peak_counts_each_storage_from_allocation_to_free():
    f32 = torch.float32
    before = torch.ones(10_000, dtype=f32)  # existed before: not counted
    with tensor_peak() as counted:
        a = torch.empty(1000, dtype=f32)  # 4,000 bytes
        b = a[:10]  # a view: the same storage, counted once
        c = torch.empty(2000, dtype=f32)  # 8,000: 12,000 live
        c.add_(1.0)  # in place: nothing new
        del a, b
        d = before * 2  # 40,000 new: 48,000 live with c
        del d, c
        e = torch.empty(100, dtype=f32)
    assert counted.peak == 48_000
    assert counted.live == 400 and e.numel() == 100


def peak_of(fn) -> int:
    with tensor_peak() as counted:
        fn()
    return counted.peak


def test_maml_memory_grows_with_the_inner_steps_and_imaml_stays_flat():
    model, params, tasks = conv_with_batch_norm()
    leaf = {k: v.detach().requires_grad_(True) for k, v in params.items()}

    def maml_step(steps):
        return lambda: maml.meta_gradient(model, leaf, tasks, steps, 0.1, "loop")

    def imaml_step(steps):
        return lambda: imaml.meta_gradient(model, params, tasks, hp(inner_steps=steps), "loop")

    def fomaml_step(steps):
        return lambda: fomaml.meta_gradient(model, params, tasks, steps, 0.1, "loop")

    assert peak_of(maml_step(16)) > 4 * peak_of(maml_step(1))  # 7.9x on this tiny model
    assert peak_of(imaml_step(16)) == peak_of(imaml_step(1))
    assert peak_of(fomaml_step(16)) <= 1.5 * peak_of(fomaml_step(1))
    assert peak_of(imaml_step(16)) < peak_of(maml_step(16))


def test_resource_metrics_say_what_their_interval_is():
    metrics = resource_metrics({"memory_mib": 3.5, "seconds": [1.0, 1.2, 0.8], "loss": [0.1, 0.2, 0.3]}, "ci95-normal")
    assert metrics["memory_mib"] == {"mean": 3.5, "std": 0.0, "ci95": 0.0, "n": 1, "interval_kind": "exact"}
    assert metrics["seconds"]["mean"] == pytest.approx(1.0) and metrics["seconds"]["n"] == 3
    assert metrics["seconds"]["interval_kind"] == "ci95-iterations"


def test_a_relation_compares_with_a_multiple_of_its_right_side():
    by_run = {name: [{"seed": 0, "metrics": {"memory_mib": {"mean": m, "ci95": 0, "n": 1}}}]
              for name, m in [("s1", 4.0), ("s100", 239.0)]}
    grows = {"kind": "at_least", "left": ["s100"], "right": ["s1"], "metrics": ["memory_mib"], "factor": 20.0,
             "margin": 0.0}
    assert check_relation(grows, by_run) == ("holds", [])
    verdict, failures = check_relation(dict(grows, factor=80.0), by_run)
    assert verdict == "fails" and failures == ["s100 memory_mib 239 vs s1 memory_mib 4 (× 80 = 320)"]
    flat = {"kind": "at_most", "left": ["s100"], "right": ["s1"], "metrics": ["memory_mib"], "factor": 1.5,
            "margin": 0.0}
    assert check_relation(flat, by_run)[0] == "fails"


@pytest.fixture
def raw():
    return yaml.load(MANIFEST.read_text(), Loader=yaml.SafeLoader)  # the merge keys (<<) resolved


def memory_claim(raw):
    return raw["claims"]["imaml-memory"]


def test_the_memory_claim_measures_memory_and_seconds(raw, tmp_path):
    claim = load(raw, tmp_path).claim("imaml-memory")
    from suite.protocol.manifest import metric_names

    assert metric_names(claim.body(), "imaml-steps-100") == {"memory_mib", "seconds"}
    cfg = claim.run_configs(runs=["imaml-steps-100"])[0]
    from suite.training.identity import numerics

    assert "resources" in numerics(cfg) and "evaluation" not in numerics(cfg)


def test_a_resource_run_needs_two_iterations(raw, tmp_path):
    memory_claim(raw)["runs"]["maml-steps-1"]["iterations"] = 1
    assert "runs.maml-steps-1.iterations: a resource measurement times the iterations after the first" in \
        error_of(raw, tmp_path)


def test_a_resource_claim_cannot_name_accuracy(raw, tmp_path):
    memory_claim(raw)["expectations"]["relations"][0]["metrics"] = ["accuracy@1"]
    assert "'accuracy@1' is not measured by the evaluation (measured: memory_mib, seconds)" in error_of(raw, tmp_path)


def test_a_factor_belongs_to_pairwise_relations(raw, tmp_path):
    relation = copy.deepcopy(memory_claim(raw)["expectations"]["relations"][1])  # nondecreasing
    memory_claim(raw)["expectations"]["relations"][1] = dict(relation, factor=2.0)
    assert "expectations.relations[1].factor: not used by a 'nondecreasing' relation" in error_of(raw, tmp_path)


def test_an_unknown_memory_measure_is_refused(raw, tmp_path):
    memory_claim(raw)["evaluation"]["memory"] = "rss"
    assert "evaluation.memory: 'rss' is not one of tensor-peak" in error_of(raw, tmp_path)


def test_a_resource_claim_draws_its_figures_but_no_learning_curves(tmp_path):
    """The committed imaml-memory results: the manifest's two figures, and no learning-curve figure (three timed
    iterations are not a learning curve)."""
    from pathlib import Path

    from suite.protocol.manifest import load_manifest
    from suite.rendering.figures import claim_figures
    from suite.results.store import load_results

    repo = Path(__file__).resolve().parents[1]
    claim = load_manifest(repo / "benchmarks.yaml").claim("imaml-memory")
    records = [r for r in load_results(repo / "results") if r["claim"] == "imaml-memory" and r["profile"] == "paper"
               and not r.get("variant")]
    assert len(records) == 18
    made = claim_figures("imaml-memory", "paper", records, tmp_path, claim.body().get("figures", []))
    assert sorted(p.name for p in made) == ["imaml-memory-figure-1.png", "imaml-memory-figure-2.png"]


def test_the_report_says_what_each_resource_interval_is():
    from pathlib import Path

    from suite.protocol.manifest import load_manifest
    from suite.rendering.tables import compared_table
    from suite.results.store import load_results
    from suite.verdicts.judge import build_reports

    repo = Path(__file__).resolve().parents[1]
    (report,) = build_reports(load_manifest(repo / "benchmarks.yaml"), load_results(repo / "results"), ["imaml-memory"])
    table = compared_table(report)
    assert report.verdict == "reproduced"
    assert set(table["± is"]) == {"exact; ci95-iterations"}  # memory is an exact count; seconds vary by iteration

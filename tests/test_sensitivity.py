"""Sensitivity variants: declared in the manifest, evaluated on the trained models without retraining, retrained
only on request, and the authors' own sinusoid test tasks drawn exactly."""
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from suite.cli import main
from suite.protocol import ManifestError, load_manifest

REPO = Path(__file__).resolve().parents[1]


def raw_manifest():
    return yaml.safe_load((REPO / "benchmarks.yaml").read_text())


def load(tmp_path, raw):
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_manifest(path)


def test_every_claim_declares_its_sensitivity_and_divergence_rule():
    manifest = load_manifest(REPO / "benchmarks.yaml")
    for claim in manifest.claims.values():
        body = claim.body()
        assert body["sensitivity"] and body["seeds_reason"] and body["expectations"]["divergence"]["reason"]


# a variant's own published number (another paper's for its protocol), valid as it stands
OWN = {"run": "maml", "metric": "mse@10", "row": "MAML, K = 10", "column": "10 steps", "value": 0.3, "interval": 0.02,
       "interval_kind": "ci95-episodes", "source": "a table"}


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.pop("sensitivity"), "sensitivity: expected a mapping"),
    (lambda c: c["sensitivity"]["test-k10"].update(runs=["nope"]), "sensitivity.test-k10.runs: no run 'nope'"),
    (lambda c: c["sensitivity"]["test-k10"].update(changes={"evaluation": {"shots": 5}}),
     "sensitivity.test-k10.changes: changes nothing in run 'maml'"),
    (lambda c: c["sensitivity"]["test-k10"].update(changes={"inner_lr": -1}), "inner_lr"),
    (lambda c: c["sensitivity"]["code-test-tasks"]["changes"]["evaluation"].update(queries=7),
     "queries must equal shots"),
    (lambda c: c["sensitivity"]["code-test-tasks"]["changes"]["evaluation"].update(test_tasks="other"),
     "cannot draw test tasks as 'other'"),
    (lambda c: c["sensitivity"]["code-inner-lr"].update(published=[dict(OWN, run="pretrained")]),
     "sensitivity.code-inner-lr.published[0].run: no run 'pretrained'"),  # not one of the variant's runs
    (lambda c: c["sensitivity"]["test-k10"].update(published=[dict(OWN, metric="mse@99")]),
     "sensitivity.test-k10.published[0].metric: 'mse@99' is not measured"),
    (lambda c: c["sensitivity"]["test-k10"].update(published=[dict(OWN, interval_kind="unknown")]),
     "sensitivity.test-k10.published[0].tolerance: required"),
    (lambda c: c["sensitivity"]["test-k10"].update(judged_at={"mse@99": "mse@10"}),
     "sensitivity.test-k10.judged_at: 'mse@99' must be the metric of a published number about its runs"),
    (lambda c: c["sensitivity"]["test-k10"].update(judged_at={"mse@1": "mse@99"}),
     "sensitivity.test-k10.judged_at[0].metric: 'mse@99' is not measured"),
    (lambda c: c["sensitivity"]["test-k10"].update(judged_at={"mse@1": "mse@10"}, published=[OWN]),
     "give 'published' or 'judged_at', not both"),
    (lambda c: c["expectations"].pop("divergence"), "expectations.divergence: missing required field"),
    (lambda c: c.pop("seeds_reason"), "seeds_reason: missing required field"),
])
def test_a_bad_sensitivity_or_divergence_entry_is_one_clear_error(tmp_path, edit, message):
    raw = raw_manifest()
    edit(raw["claims"]["maml-sinusoid"])
    with pytest.raises(ManifestError) as e:
        load(tmp_path, raw)
    assert "maml-sinusoid" in str(e.value) and message in str(e.value)


def test_a_variants_own_published_numbers_load(tmp_path):
    raw = raw_manifest()
    raw["claims"]["maml-sinusoid"]["sensitivity"]["test-k10"]["published"] = [OWN]
    assert load(tmp_path, raw).claim("maml-sinusoid").body()["sensitivity"]["test-k10"]["published"][0]["value"] == 0.3


def test_a_std_over_seeds_needs_that_many_seeds(tmp_path):
    raw = raw_manifest()
    raw["claims"]["anil-omniglot"]["seeds"] = [0]
    with pytest.raises(ManifestError, match=r"anil-omniglot.*std over 3 seeds, so the claim runs at least"):
        load(tmp_path, raw)


def test_a_variant_retrains_exactly_when_its_changes_touch_training():
    claim = load_manifest(REPO / "benchmarks.yaml").claim("maml-sinusoid")
    configs = {(c.variant, c.run): c for c in claim.variant_configs("smoke")}
    base = claim.run_configs("smoke", runs=["maml"])[0]
    assert not configs["test-lr-code", "maml"].retrains and configs["code-inner-lr", "maml"].retrains
    assert configs["test-lr-code", "maml"].training_key == base.training_key
    assert configs["test-lr-code", "maml"].hash != base.hash  # another evaluation: another result
    assert configs["code-inner-lr", "maml"].hyperparameters["inner_lr"] == 0.001
    assert configs["code-inner-lr", "maml"].training_key == configs["code-protocol", "maml"].training_key


def test_cbfinn_test_tasks_are_the_authors_numpy_stream():
    """cbfinn/maml main.py test(): np.random.seed(1), then per task generate_sinusoid_batch() with meta-batch 1
    and 2K points: amplitude, phase, then the 2K inputs, from numpy's global stream (re-done here as the code
    does it, with the global functions)."""
    from suite.tasks.sinusoid import Tasks

    tasks = Tasks([0.1, 5.0], [0.0, np.pi], [-5.0, 5.0]).sample_as_code("cbfinn-maml", 600, 5, 5, seed=1)
    np.random.seed(1)
    for i in range(600):
        amp = np.random.uniform(0.1, 5.0, [1])
        phase = np.random.uniform(0, np.pi, [1])
        x = np.random.uniform(-5.0, 5.0, [10, 1])
        y = amp[0] * np.sin(x - phase[0])
        if i in (0, 1, 599):
            assert np.array_equal(tasks.support_x[i].numpy(), x[:5].astype(np.float32))
            assert np.array_equal(tasks.query_y[i].numpy(), y[5:].astype(np.float32))
    assert tasks.support_x.shape == (600, 5, 1) and tasks.query_x.shape == (600, 5, 1)


def suite(results, *args):
    return CliRunner().invoke(main, ["--results", str(results), *args])


def test_an_evaluation_only_variant_reuses_the_checkpoint_and_a_retraining_one_waits_to_be_asked(
        tmp_path, monkeypatch):
    results = tmp_path / "results"
    out = suite(results, "run", "--claim", "maml-sinusoid", "--profile", "smoke", "--run", "maml", "--device",
                "cpu", "--no-progress")
    assert out.exit_code == 0, out.output
    seed = results / "maml-sinusoid" / "smoke" / "maml" / "seed0"
    base = json.loads((seed / "results.json").read_text())
    # `suite run` measured the evaluation-only variants on the run's trained model, and not the retraining ones
    variant = json.loads((seed / "variants" / "test-lr-code" / "results.json").read_text())
    assert variant["training"]["training_hash"] == base["training"]["training_hash"]
    assert variant["provenance"]["train_seconds"] == 0.0 and variant["finetune_lr"] == 0.001
    assert variant["metrics"]["mse@0"] == base["metrics"]["mse@0"]  # the same model, before fine-tuning
    assert variant["metrics"]["mse@1"] != base["metrics"]["mse@1"]
    assert not (seed / "variants" / "code-inner-lr").exists()
    assert "variant 'code-inner-lr' not measured for maml seed 0: it retrains" in out.output
    # evaluating again never trains: the checkpoint is read, whatever happens to the results
    import suite.training.run as run_module

    def no_training(*args, **kwargs):
        raise AssertionError("an evaluation-only variant trained")

    monkeypatch.setattr(run_module, "train_with_checkpoints", no_training)
    out = suite(results, "sensitivity", "--claim", "maml-sinusoid", "--profile", "smoke", "--variant", "test-k10",
                "--device", "cpu", "--no-progress")
    assert out.exit_code == 0, out.output
    assert (seed / "variants" / "test-k10" / "results.json").is_file()
    assert (results / "maml-sinusoid" / "smoke" / "pretrained" / "seed0").exists() is False
    assert "'test-k10' not measured for pretrained seed 0: its run's trained model is not here" in out.output
    monkeypatch.undo()
    # asked to, the retraining variant trains its own model beside the run's, and the run keeps both
    out = suite(results, "sensitivity", "--claim", "maml-sinusoid", "--profile", "smoke", "--variant",
                "code-inner-lr", "--train", "--device", "cpu", "--no-progress")
    assert out.exit_code == 0, out.output
    retrained = json.loads((seed / "variants" / "code-inner-lr" / "results.json").read_text())
    assert retrained["training"]["training_hash"] != base["training"]["training_hash"]
    assert retrained["config"]["hyperparameters"]["inner_lr"] == 0.001
    trainings = sorted(p.name for p in (tmp_path / "checkpoints" / "maml-sinusoid" / "smoke" / "maml" /
                                        "seed0").iterdir() if p.is_dir())
    assert trainings == sorted([base["training"]["training_hash"], retrained["training"]["training_hash"]])
    out = suite(results, "run", "--claim", "maml-sinusoid", "--profile", "smoke", "--run", "maml", "--device",
                "cpu", "--no-progress", "--overwrite")
    assert out.exit_code == 0, out.output
    assert (tmp_path / "checkpoints" / "maml-sinusoid" / "smoke" / "maml" / "seed0" /
            retrained["training"]["training_hash"] / "final.pt").is_file()
    # the report shows the variants measured, and the cost of those that are not
    out = suite(results, "report", "--claim", "maml-sinusoid")
    assert "Protocol sensitivity" in out.output and "| code-inner-lr" in out.output
    assert "| pretrained-code-pool | pretrained" in out.output


def test_no_sensitivity_runs_the_claim_alone(tmp_path):
    results = tmp_path / "results"
    out = suite(results, "run", "--claim", "maml-sinusoid", "--profile", "smoke", "--run", "maml", "--device",
                "cpu", "--no-progress", "--no-sensitivity")
    assert out.exit_code == 0, out.output
    seed = results / "maml-sinusoid" / "smoke" / "maml" / "seed0"
    assert (seed / "results.json").is_file() and not (seed / "variants").exists()
    assert "not measured" not in out.output


def test_a_variant_training_stops_at_the_time_limit_and_the_same_command_then_measures_it(tmp_path, monkeypatch):
    import types

    from suite import cli
    from suite.training import loop
    results = tmp_path / "results"
    args = ["sensitivity", "--claim", "maml-sinusoid", "--profile", "smoke", "--variant", "code-inner-lr", "--run",
            "maml", "--train", "--device", "cpu", "--no-progress"]
    assert "claim 'maml-sinusoid' has no run 'mam'" in suite(results, *args[:7], "--run", "mam").output
    monkeypatch.setenv(loop.STOP_AT, "")  # the command sets it in this process: undone after the test
    clock = iter([0.0, 10.0**12])  # the limit is set at time 0 and found passed at the end
    monkeypatch.setattr(cli, "time", types.SimpleNamespace(time=lambda: next(clock)))
    out = suite(results, *args, "--time-limit", "0.0001")
    assert out.exit_code == 0, out.output
    assert "maml-sinusoid/maml~code-inner-lr seed 0: stopped at the time limit after iteration 0 of" in out.output
    assert ("variant 'code-inner-lr' not measured for maml seed 0: its training stopped at the time limit; the same "
            "command resumes it") in out.output
    seed = results / "maml-sinusoid" / "smoke" / "maml" / "seed0"
    assert not (seed / "variants" / "code-inner-lr" / "results.json").exists()
    monkeypatch.undo()
    out = suite(results, *args)
    assert out.exit_code == 0, out.output
    assert (seed / "variants" / "code-inner-lr" / "results.json").is_file()
    assert not (seed / "results.json").exists()  # --run chose the run's variants; the run itself was not asked for

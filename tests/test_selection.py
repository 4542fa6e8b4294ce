"""Model selection (evaluation.selection): the last model, the best on validation, or the top-k ensemble, each
evaluated on the same test tasks; the selection changes neither the claims that say `last` nor their hashes."""
import json
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner

from suite.algorithms.inner import finetune
from suite.cli import main
from suite.protocol.manifest import load_manifest
from suite.training import loop
from suite.training.evaluate import finetune_curve, query_outputs
from suite.training.run import build_model

REPO = Path(__file__).resolve().parents[1]


def manifest_with(tmp_path, selection, iterations=4) -> Path:
    """maml-sinusoid whose smoke `maml` run trains `iterations` iterations and selects by `selection`."""
    raw = yaml.safe_load((REPO / "benchmarks.yaml").read_text())
    smoke = raw["claims"]["maml-sinusoid"]["profiles"]["smoke"]
    smoke["runs"]["maml"].update(iterations=iterations, evaluation={"selection": selection})
    path = tmp_path / f"bench-{selection['rule']}-{iterations}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def run_maml(manifest, results) -> dict:
    out = CliRunner().invoke(main, ["--manifest", str(manifest), "--results", str(results), "run", "--claim",
                                    "maml-sinusoid", "--profile", "smoke", "--run", "maml", "--device", "cpu",
                                    "--no-progress", "--no-sensitivity"])
    assert out.exit_code == 0, out.output
    return json.loads((Path(results) / "maml-sinusoid" / "smoke" / "maml" / "seed0" / "results.json").read_text())


@pytest.fixture
def scripted_validation(monkeypatch):
    """Validation that really runs, but reports the scripted values in turn (an MSE: lower is better), so that the
    peak is known; the real values are kept in `real`."""
    scripted, real = [], []
    validate = loop.validation_point

    def fake(*args, **kwargs):
        name, value = validate(*args, **kwargs)
        real.append(value)
        return name, scripted[len(real) - 1]

    monkeypatch.setattr(loop, "validation_point", fake)
    return scripted, real


def test_best_validation_picks_the_early_peak_not_the_last_model(tmp_path, scripted_validation):
    scripted, real = scripted_validation
    scripted += [0.9, 0.2, 0.5, 0.7]  # best after iteration 2 of 4
    selection = {"rule": "best-validation", "every": 1, "tasks": 3, "seed": 7}
    best = run_maml(manifest_with(tmp_path, selection), tmp_path / "best")
    assert best["selection"] == {"rule": "best-validation", "iterations": [2],
                                 "validation": {"metric": "mse@10", "values": [0.2]}}
    assert best["training"]["curve"]["validation"]["iteration"] == [1, 2, 3, 4]
    assert len(real) == 4 and len(set(real)) == 4  # it validated each model, on the same tasks
    # the model it evaluated is iteration 2's: exactly what training for 2 iterations and keeping the last gives
    two = run_maml(manifest_with(tmp_path, {"rule": "last"}, iterations=2), tmp_path / "two")
    last = run_maml(manifest_with(tmp_path, {"rule": "last"}), tmp_path / "last")
    assert best["episodes"] == two["episodes"]
    assert best["episodes"] != last["episodes"]
    assert two["selection"] == {"rule": "last", "iterations": [2]}
    # no candidate files are left beside the checkpoints: final.pt holds the one kept
    assert not list((tmp_path / "best").parent.rglob("candidates"))


def test_a_parked_validating_training_carries_its_candidates_to_another_clone(tmp_path, scripted_validation,
                                                                            monkeypatch):
    """Stopped after its best validation and parked, a best-validation training resumed on a clone without
    checkpoints/ selects the same early snapshot as an uninterrupted one: suite park carries candidates/ with
    latest.pt (without them the selected snapshot is nowhere on the clone)."""
    import shutil
    import types
    import time

    scripted, _ = scripted_validation
    peak = [0.9, 0.2, 0.5, 0.7, 0.8, 0.6]  # best after iteration 2 of 6, before the stop after 3
    scripted += peak + peak  # the uninterrupted run's, then the stopped and resumed one's, in order
    manifest = manifest_with(tmp_path, {"rule": "best-validation", "every": 1, "tasks": 3, "seed": 7}, iterations=6)
    straight = run_maml(manifest, tmp_path / "straight" / "results")

    clock = iter(range(10**6))  # stops after iteration 3
    monkeypatch.setattr(loop, "time", types.SimpleNamespace(time=lambda: next(clock), perf_counter=time.perf_counter))
    monkeypatch.setenv(loop.STOP_AT, "3")
    first = tmp_path / "first"
    with pytest.raises(FileNotFoundError):  # stopped at the limit: no results.json yet
        run_maml(manifest, first / "results")
    monkeypatch.delenv(loop.STOP_AT)
    out = CliRunner().invoke(main, ["--manifest", str(manifest), "--results", str(first / "results"), "park"])
    assert "maml-sinusoid/smoke/maml seed 0 (3 of 6): parked" in out.output, out.output
    parked, = (first / "checkpoints-in-progress").rglob("latest.pt")
    assert sorted(f.name for f in (parked.parent / "candidates").glob("*.pt")) == ["1.pt", "2.pt", "3.pt"]

    second = tmp_path / "second"  # what git carries: results/ and the parked copy, no checkpoints/
    shutil.copytree(first / "results", second / "results")
    shutil.copytree(first / "checkpoints-in-progress", second / "checkpoints-in-progress")
    resumed = run_maml(manifest, second / "results")
    assert resumed["training"]["resumed_at"] == [3]
    assert resumed["selection"] == straight["selection"] and straight["selection"]["iterations"] == [2]
    assert resumed["episodes"] == straight["episodes"]
    assert not (second / "checkpoints-in-progress").exists()  # landed: the parked copy, candidates too, is gone


def test_top_k_ensemble_keeps_the_k_best_and_averages_their_outputs(tmp_path, scripted_validation):
    scripted, _ = scripted_validation
    scripted += [0.9, 0.2, 0.5, 0.3]  # validated once: the single model's run reuses the ensemble's training
    selection = {"rule": "top-k-ensemble", "k": 2, "every": 1, "tasks": 3, "seed": 7}
    record = run_maml(manifest_with(tmp_path, selection), tmp_path / "ensemble")
    assert record["selection"]["iterations"] == [2, 4]  # the best, then the second best
    single = run_maml(manifest_with(tmp_path, {"rule": "best-validation", "every": 1, "tasks": 3, "seed": 7}),
                      tmp_path / "single")
    assert record["episodes"] != single["episodes"]
    assert single["selection"]["iterations"] == [2]  # the ensemble's training, reused: the best of its candidates
    assert single["training"]["training_hash"] == record["training"]["training_hash"]


def test_an_ensembles_metrics_are_those_of_its_members_mean_outputs():
    claim = load_manifest(REPO / "benchmarks.yaml").claim("maml-sinusoid")
    cfg = claim.run_configs("smoke", runs=["maml"])[0]
    model = build_model(cfg)
    a, b = model.init_params(0, dtype=torch.float32), model.init_params(1, dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    sx, qx = torch.rand(5, 1, generator=g), torch.rand(7, 1, generator=g)
    sy, qy = torch.sin(sx), torch.sin(qx)
    config = dict(cfg.evaluation, steps=[0, 2])
    ensemble = finetune_curve(model, {k: torch.stack([a[k], b[k]]) for k in a}, sx, sy, qx, qy, None, config,
                              members=2)

    def outputs(p):
        return finetune(model.loss, p, sx, sy, config["optimizer"], model.inner_loop_names, config["steps"],
                        lambda q: query_outputs(model, q, sx, qx, "none")[""])

    mean = [(x + y) / 2 for x, y in zip(outputs(a), outputs(b))]
    expected = torch.stack([((m - qy) ** 2).mean() for m in mean])
    torch.testing.assert_close(ensemble["mse"], expected)
    alone = finetune_curve(model, a, sx, sy, qx, qy, None, config)
    assert not torch.allclose(alone["mse"], expected)


def test_selecting_the_last_model_leaves_every_claims_hash_as_it_was():
    """`selection: {rule: last}` is what every result before the field used: the hash leaves it out."""
    claim = load_manifest(REPO / "benchmarks.yaml").claim("maml-sinusoid")
    cfg = claim.run_configs("smoke", runs=["maml"])[0]
    assert cfg.evaluation["selection"] == {"rule": "last"}
    assert "selection" not in cfg.hashed["evaluation"]
    best = claim.run_configs("smoke", runs=["maml"])[0]
    best.evaluation = dict(best.evaluation, selection={"rule": "best-validation", "every": 1, "tasks": 3, "seed": 7})
    assert best.hash != cfg.hash and best.training_key != cfg.training_key  # validation is part of the training
    ensemble = claim.run_configs("smoke", runs=["maml"])[0]
    ensemble.evaluation = dict(best.evaluation, selection=dict(best.evaluation["selection"], rule="top-k-ensemble",
                                                               k=5))
    assert ensemble.hash != best.hash and ensemble.training_key == best.training_key  # one training serves both

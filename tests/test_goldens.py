"""Golden numbers: every claim's smoke profile, run on CPU on each path (vmap over the tasks, a loop over them, or the
tasks grouped into one computation: suite/training/paths.py), reproduces the numbers committed in tests/goldens/
bit for bit.

A run's identity (its resolved configuration plus the numerics versions of the algorithm, task family, model and
evaluation it uses) decides whether a trained model or a result can be reused. The goldens are what keeps that
honest: a change that alters a smoke number without bumping a numerics version fails here, and so does a bumped
version whose goldens were not regenerated. Regenerate them, in the same commit as the change, with

    python3 -m pytest tests/test_goldens.py --update-goldens

The numbers are exact for the torch release and the CPU kernels they were made with. The kernels are the CPU's
model and torch's CPU capability (AVX2, AVX512, ...), as provenance.device_name writes them ("AMD EPYC, AVX2"): the
capability decides the instructions of torch's vectorised kernels, and the CPU decides the code paths of the
libraries under them (an Intel Xeon with AVX512 does not reproduce the first goldens either), and so the rounding;
the smoke runs' unstable inner loops amplify a last-digit difference into a different curve by their first logged
loss (20-way 5-shot Omniglot's: 88.96 on the machines that made the first goldens, 89.02 on an AVX2 one). So each
file holds the goldens of each kind of kernels they were made on ({kernels: {path: {torch, runs}}}), and a run
passes when its numbers equal, bit for bit, those of any kind. The first goldens' machine was not recorded: they are
labelled FIRST. The label only decides what happens when no kind's numbers match: on a machine of a kind the file
holds that fails (something changed them), on a machine of another kind it skips, saying so, after checking the
runs' identities. Regenerating on one machine adds its kind's goldens, and drops another kind's whose identities it
changed (they are stale; a machine of that kind makes them again). Under another torch release the numbers are
compared to 1e-4 relative, and the test says so.

They are made, and checked, with torch's default threads on this project's 2-core machine, as CI runs them: Conv4's
CPU kernels round differently with OMP_NUM_THREADS=1 (the Omniglot goldens then fail, with nothing changed).
"""
import json
import math
import shutil
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner

from suite.cli import main
from suite.protocol.components import algorithms
from suite.training.paths import PATHS
from suite.training.provenance import device_name

REPO = Path(__file__).resolve().parents[1]
GOLDENS = Path(__file__).resolve().parent / "goldens"
CLAIMS = list(yaml.safe_load((REPO / "benchmarks.yaml").read_text())["claims"])
FAMILY = {c: body["task"]["family"] for c, body in yaml.safe_load((REPO / "benchmarks.yaml").read_text())
          ["claims"].items()}


@pytest.fixture(scope="session")
def golden_data(tmp_path_factory, request):
    """A data folder with whatever the claims need: the real Omniglot (when shared/ has it) and the generated
    Mini-ImageNet and LEO-embedding stand-ins."""
    data = tmp_path_factory.mktemp("golden-data") / "datasets"
    for dataset in ("miniimagenet", "leo_embeddings"):
        result = CliRunner().invoke(main, ["--data", str(data), "fetch", dataset, "--generated", "--no-progress"])
        assert result.exit_code == 0, result.output
    if any(f == "omniglot" for f in FAMILY.values()):
        try:
            omniglot = request.getfixturevalue("omniglot_data")
        except pytest.skip.Exception:
            omniglot = None
        if omniglot is not None:
            shutil.copytree(omniglot / "omniglot", data / "omniglot")
    return data


def run_numbers(record: dict) -> dict:
    """What a result computed: each metric's mean over test tasks, the lr chosen, and the learning curves (a
    resource measurement's seconds aside: the machine decides them)."""
    curve = record["training"]["curve"]
    return {"metrics": {name: m["mean"] for name, m in sorted(record["metrics"].items()) if name != "seconds"},
            "finetune_lr": record["finetune_lr"],
            "loss_curve": curve["loss"],
            "test_curve": curve.get("test", {}).get("value", [])}


def identity(record: dict) -> dict:
    """What decides whether the numbers may differ: the configuration's hash and the numerics versions."""
    return {"config_hash": record["config_hash"], "numerics": record["numerics"]}


def identities(goldens: dict) -> dict:
    """Each run's identity in one path's goldens ({torch, runs}), without its numbers."""
    return {run: {k: v for k, v in r.items() if k != "numbers"} for run, r in goldens["runs"].items()}


def same(a, b, exact: bool) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k], exact) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(same(x, y, exact) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b if exact else math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-7)
    return a == b


@pytest.mark.slow
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("claim", CLAIMS)
def test_smoke_numbers_are_the_goldens(claim, path, golden_data, tmp_path, request):
    if FAMILY[claim] == "omniglot" and not (golden_data / "omniglot").is_dir():
        pytest.skip("the real Omniglot archives are not in shared/data")
    results = tmp_path / "results"
    out = CliRunner().invoke(main, ["--results", str(results), "--data", str(golden_data), "run", "--claim", claim,
                                    "--profile", "smoke", "--device", "cpu", "--path", path, "--no-progress",
                                    "--no-sensitivity"])  # the goldens are the runs' numbers
    assert out.exit_code == 0, out.output
    records = {f"{p.parent.parent.name}/{p.parent.name}": json.loads(p.read_text())
               for p in sorted((results / claim / "smoke").glob("*/seed*/results.json"))}
    measured = {"torch": torch.__version__.split("+")[0],
                "runs": {run: {**identity(r), "numbers": run_numbers(r)} for run, r in records.items()}}
    for run, r in records.items():  # a run takes its algorithm's first path where it cannot compute this one
        allowed = algorithms()[r["algorithm"]].paths(r["config"]["hyperparameters"])
        assert r["path"] == (path if path in allowed else allowed[0]), run
    file, kernels = GOLDENS / f"{claim}.json", device_name(torch.device("cpu"))
    stored = json.loads(file.read_text()) if file.is_file() else {}  # {kernels: {path: {torch, runs}}}
    if request.config.getoption("--update-goldens"):
        stored.setdefault(kernels, {})[path] = measured
        for other in set(stored) - {kernels}:  # other kernels' goldens of another identity are stale: dropped
            if path in stored[other] and identities(stored[other][path]) != identities(measured):
                del stored[other][path]
        file.parent.mkdir(exist_ok=True)
        file.write_text(json.dumps({k: v for k, v in sorted(stored.items()) if v}, indent=1, sort_keys=True) + "\n")
        return
    made = {k: goldens[path] for k, goldens in stored.items() if path in goldens}
    assert made, f"{file} has no {path} goldens: run pytest tests/test_goldens.py --update-goldens"
    now_identities = identities(measured)
    for golden in made.values():  # what the numbers are of holds whatever the kernels
        assert measured["runs"].keys() == golden["runs"].keys(), \
            f"{claim}: the smoke profile's runs changed; regenerate the goldens (--update-goldens) in this commit"
        for run, then in identities(golden).items():
            now = now_identities[run]
            assert now == then, (
                f"{claim} {run} ({path}): its identity changed ({then} -> {now}): a configuration or numerics version "
                "changed, so regenerate the goldens (pytest tests/test_goldens.py --update-goldens) in the same commit")

    def bit_for_bit(golden):
        return golden["torch"] == measured["torch"] and all(
            same(now["numbers"], golden["runs"][run]["numbers"], True) for run, now in measured["runs"].items())

    if any(bit_for_bit(golden) for golden in made.values()):
        return  # bit for bit some kernels' goldens (which kernels is a label, not a condition: see the docstring)
    if kernels not in made:
        pytest.skip(f"{file.name} has {path} goldens for torch's {', '.join(sorted(made))} CPU kernels, not for this "
                    f"CPU's {kernels}, and its numbers are none of them (the kernels' rounding differs, and some smoke "
                    "runs amplify it past any tolerance within a few iterations): make them here with "
                    "pytest tests/test_goldens.py --update-goldens")
    golden = made[kernels]
    exact = measured["torch"] == golden["torch"]
    if not exact:
        warnings.warn(f"goldens made with torch {golden['torch']}, running {measured['torch']}: compared to 1e-4")
    for run, now in measured["runs"].items():
        then = golden["runs"][run]
        assert same(now["numbers"], then["numbers"], exact), (
            f"{claim} {run} ({path}): the smoke numbers differ from the goldens while its identity is unchanged. If the "
            "change is meant to alter numbers, bump the numerics version of what it changed and regenerate the "
            "goldens in the same commit; otherwise it broke them.")

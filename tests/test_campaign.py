"""scripts/cpu-campaign.sh land: two campaigns of one claim, trained in two clones of main, land in either order and
leave each training as its own campaign left it (issue 20: landing one clone's stale copy over the other's newer
training lost 9,000 iterations of it)."""
import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CLAIM = "maml-sinusoid"
PARKED = "checkpoints-in-progress"


def sh(*args, cwd, env=None):
    out = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def training(seed: int) -> tuple[Path, Path, Path]:
    """A paper training's progress.json, its checkpoint folder and its parked checkpoint, as the runner lays them."""
    ckpts = Path("checkpoints", CLAIM, "paper", "maml", f"seed{seed}", "identity")
    return (Path("results", CLAIM, "paper", "maml", f"seed{seed}", "progress.json"), ckpts,
            Path(PARKED, *ckpts.parts[1:], "latest.pt"))


def write_progress(root: Path, seed: int, iteration: int) -> None:
    progress, ckpts, _ = training(seed)
    (root / progress).parent.mkdir(parents=True, exist_ok=True)
    (root / progress).write_text(json.dumps({
        "claim": CLAIM, "profile": "paper", "run": "maml", "seed": seed, "config_hash": "c", "path": "grouped",
        "iteration": iteration, "iterations": 70000, "seconds": 1.0, "gpu_seconds": 0.0,
        "checkpoint": str(ckpts), "segments": []}))


@pytest.fixture
def main(tmp_path):
    """A clone of this repository with two paper trainings parked in it (seeds 7 and 8, at 1,000 iterations), and
    a `suite` on PATH that stands in for the report the script regenerates."""
    main = tmp_path / "main"
    sh("git", "clone", "-q", str(REPO), str(main), cwd=tmp_path)
    script = main / "scripts" / "cpu-campaign.sh"  # this checkout's, committed or not
    script.write_bytes((REPO / "scripts" / "cpu-campaign.sh").read_bytes())
    for seed in (7, 8):
        write_progress(main, seed, 1000)
        parked = main / training(seed)[2]
        parked.parent.mkdir(parents=True, exist_ok=True)
        parked.write_bytes(b"at 1000")
    sh("git", "add", "-A", cwd=main)
    sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "two trainings parked", cwd=main)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "suite").write_text("#!/bin/sh\nexit 0\n")
    (tmp_path / "bin" / "suite").chmod(0o755)
    return main


@pytest.mark.parametrize("order", [("c1", "c2"), ("c2", "c1")])
def test_two_campaigns_of_a_claim_land_in_either_order(main, tmp_path, order):
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "PYTHONPATH": ""}
    clones = {name: tmp_path / name for name in ("c1", "c2")}
    for clone in clones.values():
        sh("git", "clone", "-q", str(main), str(clone), cwd=tmp_path)
    # c1 trains seed 7 on to 5,000 iterations: a newer latest.pt in its checkpoints/, which landing parks
    write_progress(clones["c1"], 7, 5000)
    ckpts = clones["c1"] / training(7)[1]
    ckpts.mkdir(parents=True)
    (ckpts / "latest.pt").write_bytes(b"at 5000")
    # c2 finishes seed 8: its results written, its progress.json and parked checkpoint gone, as the runner leaves them
    progress, _, parked = training(8)
    (clones["c2"] / progress).with_name("results.json").write_text("{}")
    (clones["c2"] / progress).unlink()
    (clones["c2"] / parked).unlink()
    # and c2 wrote the config of a variant it never began to train: not landed
    (clones["c2"] / progress).parent.joinpath("variants", "v").mkdir(parents=True)
    (clones["c2"] / progress).parent.joinpath("variants", "v", "config.json").write_text("{}")

    for name in order:
        sh("bash", "scripts/cpu-campaign.sh", "land", str(clones[name]), CLAIM, cwd=main, env=env)

    assert json.loads((main / training(7)[0]).read_text())["iteration"] == 5000
    assert (main / training(7)[2]).read_bytes() == b"at 5000"
    assert (main / progress).with_name("results.json").is_file()
    assert not (main / progress).exists() and not (main / parked).exists()
    # nothing else of the claim changed: the committed results are as they were
    changed = sh("git", "status", "--porcelain", "-uall", cwd=main).splitlines()
    assert sorted(line[3:] for line in changed) == sorted(
        [str(training(7)[0]), str(training(7)[2]), str(progress), str(progress.with_name("results.json")),
         str(parked)])

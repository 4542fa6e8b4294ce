"""`dvc repro` of the smoke profile on a fresh copy of the repository: every claim and the report are built, a
second repro does nothing, and editing one claim reruns that claim alone."""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import SHARED_OMNIGLOT

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("dvc") is None, reason="dvc is not installed")


def sh(*cmd, cwd, env=None):
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """The working tree's tracked and unignored files, committed in a new repository, as a fresh clone has them."""
    if not (SHARED_OMNIGLOT / "images_background.zip").is_file():
        pytest.skip(f"the real Omniglot archives are not in {SHARED_OMNIGLOT}")
    dest = tmp_path_factory.mktemp("clone") / "suite"
    files = sh("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=REPO).split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    for d in ("results", "checkpoints"):  # start from nothing, as a user re-running the table does
        shutil.rmtree(dest / d, ignore_errors=True)
    (dest / "params.yaml").write_text("profile: smoke\n")
    sh("git", "init", "-q", cwd=dest)
    sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A", cwd=dest)
    sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "clone", cwd=dest)
    return dest


@pytest.fixture(scope="module")
def env(clone):
    """The stages run the clone's own code (PYTHONPATH), so that editing it there is what a user's edit is."""
    return {**os.environ, "SUITE_FETCH_FROM": str(SHARED_OMNIGLOT.parent),
            "SUITE_FETCH_GENERATED": "miniimagenet,leo_embeddings", "SUITE_DEVICE": "cpu", "PYTHONPATH": str(clone)}


def test_dvc_repro_builds_every_claim_and_the_report_then_reruns_only_what_changed(clone, env):
    manifest = yaml.safe_load((clone / "benchmarks.yaml").read_text())
    claims = list(manifest["claims"])

    first = sh("dvc", "repro", cwd=clone, env=env)
    assert ran(first) == {f"claim@{c}" for c in claims} | {f"fetch@{d}" for d in manifest["datasets"]} | {"report"}
    for c in claims:
        assert json.loads((clone / "results" / "metrics" / f"{c}.smoke.json").read_text())
        assert list((clone / "results" / c / "smoke").glob("*/seed*/results.json"))
    report = (clone / "results" / "REPORT.md").read_text()
    for c in claims:
        assert f"## {c}" in report
    assert "reproduced" not in report.replace("not reproduced", "")  # smoke results are never a reproduction
    for c in claims:  # and those on the generated Mini-ImageNet stand-in say so
        if manifest["claims"][c]["task"]["family"] == "miniimagenet":
            section = report.split(f"## {c}")[1].split("\n## ")[0]
            assert "smoke, generated data — not a reproduction" in section, c
    figures = re.findall(r"!\[[^]]*\]\(([^)]+)\)", report)
    assert figures and all((clone / "results" / f).is_file() for f in figures)
    assert (clone / "results" / "figures" / "maml-sinusoid-examples.png").is_file()

    assert ran(sh("dvc", "repro", cwd=clone, env=env)) == set()

    text = (clone / "benchmarks.yaml").read_text()
    (clone / "benchmarks.yaml").write_text(text.replace("maml: {iterations: 40}", "maml: {iterations: 41}", 1))
    assert ran(sh("dvc", "repro", cwd=clone, env=env)) == {"claim@maml-sinusoid", "report"}
    record = json.loads((clone / "results" / "maml-sinusoid" / "smoke" / "maml" / "seed0" / "results.json")
                        .read_text())
    assert record["training"]["iterations"] == 41


def test_the_device_is_not_a_tracked_parameter(clone, env):
    sh("dvc", "repro", cwd=clone, env=env)
    status = sh("dvc", "status", cwd=clone, env={**env, "SUITE_DEVICE": "cuda"})
    assert "up to date" in status


def test_dvc_exp_run_sweeps_one_claims_hyperparameter(clone, env):
    sh("dvc", "repro", cwd=clone, env=env)
    out = sh("dvc", "exp", "run", "-S", "benchmarks.yaml:claims.maml-sinusoid.runs.maml.inner_lr=0.02", cwd=clone,
             env=env)
    assert ran(out) == {"claim@maml-sinusoid", "report"}
    config = json.loads((clone / "results" / "maml-sinusoid" / "smoke" / "maml" / "seed0" / "config.json")
                        .read_text())
    assert config["hyperparameters"]["inner_lr"] == 0.02


def checkpoints(clone) -> dict[str, float]:
    return {str(p.relative_to(clone)): p.stat().st_mtime for p in (clone / "checkpoints").rglob("final.pt")}


def test_a_comment_reruns_nothing_and_a_bumped_numerics_version_reruns_exactly_the_claims_that_use_it(clone, env):
    sh("dvc", "repro", cwd=clone, env=env)
    trained = checkpoints(clone)
    module = clone / "suite" / "algorithms" / "reptile.py"
    module.write_text(module.read_text().replace("\n\n\ndef ", "\n\n\n# a comment, and a blank line\n\ndef ", 1))
    assert "up to date" in sh("dvc", "status", cwd=clone, env=env)
    assert ran(sh("dvc", "repro", cwd=clone, env=env)) == set()
    assert checkpoints(clone) == trained  # every trained model kept as it was

    module.write_text(module.read_text().replace("NUMERICS_VERSION = 1", "NUMERICS_VERSION = 2"))
    sh("suite", "numerics", cwd=clone, env=env)
    manifest = yaml.safe_load((clone / "benchmarks.yaml").read_text())
    using = {c for c, body in manifest["claims"].items()
             if any(run.get("algorithm") == "reptile" for run in body["runs"].values())}
    assert using == {"omniglot-reptile", "reptile-k-ablation", "miniimagenet-reptile"}
    assert ran(sh("dvc", "repro", cwd=clone, env=env)) == {f"claim@{c}" for c in using} | {"report"}
    record = json.loads(next((clone / "results" / "reptile-k-ablation" / "smoke").glob("*/seed*/results.json"))
                        .read_text())
    assert record["numerics"]["algorithm/reptile"] == 2
    kept = {k: v for k, v in checkpoints(clone).items() if k in trained}
    assert all(not k.startswith(tuple(f"checkpoints/{c}/" for c in using)) for k in kept)  # retrained afresh
    assert kept == {k: v for k, v in trained.items() if not k.startswith(tuple(f"checkpoints/{c}/" for c in using))}


def test_dvc_metrics_show_needs_no_torch(clone, env, tmp_path):
    from test_architecture import BLOCK_TORCH

    sh("dvc", "repro", cwd=clone, env=env)
    (tmp_path / "sitecustomize.py").write_text(BLOCK_TORCH)
    out = sh("dvc", "metrics", "show", cwd=clone, env={**env, "PYTHONPATH": str(tmp_path)})
    assert "maml-sinusoid.smoke.json" in out

"""Runs as a submitit job array (suite.training.cluster): the debug and local executors take the path a Slurm job
takes, and give exactly the numbers of a run here; a failed job names itself, its log and its error while the others
finish; a rerun submits only what is missing; Slurm settings come from the manifest or --slurm-* options."""
import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from suite.cli import main

REPO = Path(__file__).resolve().parents[1]
RUNS = ("maml", "pretrained")


def suite(results, *args, manifest=REPO / "benchmarks.yaml"):
    return CliRunner().invoke(main, ["--manifest", str(manifest), "--results", str(results), "run", "--claim",
                                     "maml-sinusoid", "--profile", "smoke", "--device", "cpu", "--no-progress",
                                     "--no-sensitivity", *args])


def episodes(results) -> dict:
    return {run: json.loads((Path(results) / "maml-sinusoid" / "smoke" / run / "seed0" / "results.json")
                            .read_text())["episodes"] for run in RUNS}


@pytest.fixture(scope="module")
def inline(tmp_path_factory):
    results = tmp_path_factory.mktemp("inline") / "results"
    out = suite(results)
    assert out.exit_code == 0, out.output
    return episodes(results)


@pytest.mark.parametrize("executor", ["debug", "local"])
def test_a_job_array_gives_exactly_the_numbers_of_a_run_here(executor, inline, tmp_path):
    out = suite(tmp_path / "results", "--executor", executor)
    assert out.exit_code == 0, out.output
    assert f"submitted 2 run(s) as {executor} job(s)" in out.output
    assert "**Verdict: smoke only.**" in out.output  # the report, written by the submitting process
    assert episodes(tmp_path / "results") == inline
    again = suite(tmp_path / "results", "--executor", executor)  # nothing missing: nothing submitted
    assert again.exit_code == 0 and "submitted" not in again.output


def pretrained_checkpoint(results) -> Path:
    """Where the pretrained run's training checkpoints (the path `auto` takes for it on a CPU)."""
    import torch

    from suite.protocol.manifest import load_manifest
    from suite.training.layout import checkpoint_dir
    from suite.training.paths import choose_path
    from suite.training.run import build

    cfg = load_manifest(REPO / "benchmarks.yaml").claim("maml-sinusoid").run_configs("smoke", runs=["pretrained"])[0]
    family, model = build(cfg, REPO / "datasets")
    data = json.loads(json.dumps(family.provenance))
    return checkpoint_dir(Path(results), cfg, data, choose_path(cfg, model, torch.device("cpu"))) / "latest.pt"


def test_a_failed_job_names_itself_its_log_and_error_the_others_finish_and_a_rerun_submits_only_it(tmp_path, inline):
    broken = pretrained_checkpoint(tmp_path / "results")
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not a checkpoint")  # the job fails as it resumes
    out = suite(tmp_path / "results", "--executor", "local")
    assert out.exit_code != 0
    assert "1 of 2 jobs failed (the others finished)" in out.output
    assert "run 'pretrained'" in out.output and "cannot read this checkpoint" in out.output
    log = out.output.split("(log: ")[1].split(")")[0]
    assert "cannot read this checkpoint" in Path(log).read_text()  # the log it names holds the error
    assert (tmp_path / "results" / "maml-sinusoid" / "smoke" / "maml" / "seed0" / "results.json").is_file()
    broken.unlink()
    rerun = suite(tmp_path / "results", "--executor", "local")
    assert rerun.exit_code == 0, rerun.output
    assert "submitted 1 run(s)" in rerun.output
    assert episodes(tmp_path / "results") == inline


def test_slurm_settings_come_from_the_manifest_or_options_and_a_missing_one_is_a_clear_error(tmp_path):
    out = suite(tmp_path / "results", "--executor", "slurm")
    assert out.exit_code != 0
    assert "executor.slurm.time_min: required to submit to Slurm" in out.output
    assert "--slurm-time-min" in out.output
    assert not (tmp_path / "results").exists() and not (tmp_path / "jobs").exists()  # nothing written
    raw = yaml.safe_load((REPO / "benchmarks.yaml").read_text())
    raw["executor"] = {"slurm": {"time_min": 60, "cpus_per_task": 2, "gpus_per_node": 0, "mem_gb": "lots"}}
    manifest = tmp_path / "bench.yaml"
    manifest.write_text(yaml.safe_dump(raw, sort_keys=False))
    bad = suite(tmp_path / "results", "--executor", "slurm", manifest=manifest)
    assert bad.exit_code != 0 and "executor.slurm.mem_gb: expected a positive integer" in bad.output

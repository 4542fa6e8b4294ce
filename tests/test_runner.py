"""The runner: results with provenance, exact resume after a real kill, no silent overwrite, clear errors."""
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner

from suite.cli import main
from suite.training.layout import RunError

REPO = Path(__file__).resolve().parents[1]


def write_manifest(tmp_path, **smoke_runs) -> Path:
    raw = yaml.safe_load((REPO / "benchmarks.yaml").read_text())
    smoke = raw["claims"]["maml-sinusoid"]["profiles"]["smoke"]
    for run, override in smoke_runs.items():
        smoke["runs"][run].update(override)
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def suite(manifest, results, *args):
    return CliRunner().invoke(main, ["--manifest", str(manifest), "--results", str(results), *args])


def result_file(results, run="maml", profile="smoke", seed=0):
    return Path(results) / "maml-sinusoid" / profile / run / f"seed{seed}" / "results.json"


def test_a_smoke_run_writes_results_with_provenance_and_per_episode_values(tmp_path):
    manifest = write_manifest(tmp_path)
    out = suite(manifest, tmp_path / "results", "run", "--claim", "maml-sinusoid", "--profile", "smoke",
                "--device", "cpu", "--no-progress")
    assert out.exit_code == 0, out.output
    assert "**Verdict: smoke only.**" in out.output
    record = json.loads(result_file(tmp_path / "results").read_text())
    config = json.loads((result_file(tmp_path / "results").parent / "config.json").read_text())
    assert record["config_hash"] == config["config_hash"] == record["provenance"]["config_hash"]
    prov = record["provenance"]
    for key in ("git_commit", "versions", "device", "seed", "profile", "train_seconds"):
        assert key in prov
    assert prov["profile"] == "smoke" and prov["device"] == "cpu"
    n_tasks = config["evaluation"]["tasks"]
    assert len(record["episodes"]["mse@1"]) == n_tasks
    # the summary is recomputable from the stored episodes
    values = record["episodes"]["mse@5"]
    assert record["metrics"]["mse@5"]["mean"] == pytest.approx(sum(values) / len(values))
    assert record["training"]["curve"]["iteration"][-1] == config["hyperparameters"]["iterations"]
    # the pretrained baseline's fine-tuning lr was searched, and the choice is recorded
    base = json.loads(result_file(tmp_path / "results", run="pretrained").read_text())
    assert base["finetune_lr"] in [r["lr"] for r in base["lr_search"]]


def test_a_different_config_never_silently_overwrites_a_result(tmp_path):
    manifest = write_manifest(tmp_path)
    args = ["run", "--claim", "maml-sinusoid", "--profile", "smoke", "--run", "maml", "--no-progress"]
    assert suite(manifest, tmp_path / "r", *args).exit_code == 0
    first = json.loads(result_file(tmp_path / "r").read_text())

    manifest = write_manifest(tmp_path, maml={"inner_lr": 0.02})
    out = suite(manifest, tmp_path / "r", *args)
    assert out.exit_code == 1
    assert "comes from another configuration" in out.output and "--overwrite" in out.output
    assert json.loads(result_file(tmp_path / "r").read_text()) == first  # untouched

    out = suite(manifest, tmp_path / "r", *args, "--overwrite")
    assert out.exit_code == 0, out.output
    assert json.loads(result_file(tmp_path / "r").read_text())["config_hash"] != first["config_hash"]


def test_the_same_config_is_not_retrained(tmp_path):
    manifest = write_manifest(tmp_path)
    args = ["run", "--claim", "maml-sinusoid", "--profile", "smoke", "--run", "maml", "--no-progress"]
    assert suite(manifest, tmp_path / "r", *args).exit_code == 0
    before = result_file(tmp_path / "r").stat().st_mtime_ns
    assert suite(manifest, tmp_path / "r", *args).exit_code == 0
    assert result_file(tmp_path / "r").stat().st_mtime_ns == before


@pytest.mark.parametrize("args, message", [
    (["--device", "tpu"], "--device 'tpu': expected auto, cpu, cuda or cuda:N"),
    (["--run", "reptile"], "claim 'maml-sinusoid' has no run 'reptile'"),
    (["--profile", "tiny"], "claim 'maml-sinusoid' has no profile 'tiny'"),
])
def test_bad_run_arguments_are_clear_errors_that_write_nothing(tmp_path, args, message):
    manifest = write_manifest(tmp_path)
    out = suite(manifest, tmp_path / "r", "run", "--claim", "maml-sinusoid", *args)
    assert out.exit_code == 1 and message in out.output, out.output
    assert not (tmp_path / "r").exists()


def test_all_claims_or_named_ones_not_both_nor_neither(tmp_path):
    manifest = write_manifest(tmp_path)
    for args in (["--all", "--claim", "maml-sinusoid"], []):
        out = suite(manifest, tmp_path / "r", "run", *args)
        assert out.exit_code == 2 and "name the claims (--claim ID, repeatable) or pass --all" in out.output
    assert not (tmp_path / "r").exists()


def test_cuda_is_a_clear_error_without_a_gpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out = suite(write_manifest(tmp_path), tmp_path / "r", "run", "--claim", "maml-sinusoid", "--device", "cuda")
    assert out.exit_code == 1 and "no CUDA device is available" in out.output


def test_a_cpu_is_named_by_its_model_and_vector_instructions_not_only_its_architecture(monkeypatch):
    from suite.training import provenance

    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    monkeypatch.setattr(provenance, "_cpuinfo", lambda: "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t: avx2\n")
    assert provenance.device_name(torch.device("cpu")) == "AMD EPYC 7B13, AVX2"
    monkeypatch.setattr(provenance, "_cpuinfo", lambda: "")  # no /proc/cpuinfo (not Linux): the architecture
    monkeypatch.setattr(provenance.platform, "processor", lambda: "")
    monkeypatch.setattr(provenance.platform, "machine", lambda: "arm64")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "DEFAULT")
    assert provenance.device_name(torch.device("cpu")) == "arm64, DEFAULT"


def test_runs_in_parallel_workers_give_exactly_the_numbers_of_runs_one_after_another(tmp_path):
    manifest = write_manifest(tmp_path, maml={"iterations": 300})
    cmd = [sys.executable, "-m", "suite.cli", "--manifest", str(manifest), "run", "--claim", "maml-sinusoid",
           "--profile", "smoke", "--device", "cpu", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # a worker of two on this CPU gets its share: one thread
    subprocess.run(cmd, env={**env, "SUITE_RESULTS": str(tmp_path / "one")}, check=True, capture_output=True)
    parallel = subprocess.run(cmd + ["--jobs", "2"], env={**env, "SUITE_RESULTS": str(tmp_path / "two")},
                              check=True, capture_output=True, text=True)
    for run in ("maml", "pretrained"):
        assert f"claim 'maml-sinusoid', run '{run}', seed 0: done" in parallel.stderr  # a worker ran it
        one = json.loads(result_file(tmp_path / "one", run=run).read_text())
        two = json.loads(result_file(tmp_path / "two", run=run).read_text())
        assert two["training"]["curve"] == one["training"]["curve"]
        assert two["episodes"] == one["episodes"] and two["metrics"] == one["metrics"]


def test_a_failed_parallel_run_names_itself_and_the_others_finish(tmp_path):
    out = suite(REPO / "benchmarks.yaml", tmp_path / "results", "--data", str(tmp_path / "no-data"), "run",
                "--claim", "omniglot-maml", "--claim", "maml-sinusoid", "--profile", "smoke", "--device", "cpu",
                "--jobs", "2", "--no-progress")
    assert out.exit_code == 1
    error = out.output[out.output.index("Error: "):]
    assert error.startswith("Error: 4 of 6 runs failed (the others finished):\n")
    for run in ("n5-k1", "n5-k5", "n20-k1", "n20-k5"):
        assert f"claim 'omniglot-maml', run '{run}', seed 0: Omniglot is not fetched: run `suite fetch" in error
    assert result_file(tmp_path / "results").exists() and result_file(tmp_path / "results", run="pretrained").exists()
    assert not (tmp_path / "results" / "omniglot-maml").exists()


def test_a_group_that_fails_at_its_twin_counts_the_twin_alone_as_failed(tmp_path, monkeypatch):
    import suite.training.parallel as parallel
    from suite.protocol import load_manifest

    configs = load_manifest(twin_manifest(tmp_path)).claim("maml-sinusoid").run_configs("paper", seeds=[0])
    group, = [g for g in parallel.training_order(configs, tmp_path / "results") if len(g) == 2]
    done = []

    def train_and_evaluate(cfg, *args):
        if cfg.run == "maml-k10":
            raise RunError("the twin's evaluation failed")
        done.append(cfg.run)

    monkeypatch.setattr(parallel, "train_and_evaluate", train_and_evaluate)
    with pytest.raises(RunError) as failure:
        parallel.train_and_evaluate_group(group, tmp_path / "results", None, {}, tmp_path)
    assert done == ["maml"] and failure.value.runs_failed == 1  # maml has its result: one of two runs failed
    assert pickle.loads(pickle.dumps(failure.value)).runs_failed == 1  # as a worker's failure reaches suite run


def test_a_killed_run_resumes_to_exactly_the_numbers_of_an_uninterrupted_run(tmp_path):
    manifest = write_manifest(tmp_path, maml={"iterations": 3000})
    raw = yaml.safe_load(manifest.read_text())
    raw["claims"]["maml-sinusoid"]["profiles"]["smoke"]["execution"] = {"checkpoint_every": 100, "log_every": 50}
    raw["claims"]["maml-sinusoid"]["profiles"]["smoke"]["evaluation"]["during_training"] = {
        "every": 150, "tasks": 3, "seed": 5}
    manifest.write_text(yaml.safe_dump(raw, sort_keys=False))
    cmd = [sys.executable, "-m", "suite.cli", "--manifest", str(manifest), "run", "--claim", "maml-sinusoid",
           "--profile", "smoke", "--run", "maml", "--device", "cpu", "--no-progress"]

    subprocess.run(cmd + [], cwd=tmp_path, env={**os.environ, "SUITE_RESULTS": str(tmp_path / "straight" / "results")},
                   check=True, capture_output=True)

    env = {**os.environ, "SUITE_RESULTS": str(tmp_path / "killed" / "results")}
    run_checkpoints = tmp_path / "killed" / "checkpoints" / "maml-sinusoid" / "smoke" / "maml" / "seed0"
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list(run_checkpoints.glob("*/latest.pt")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    found = list(run_checkpoints.glob("*/latest.pt"))
    assert found, "the run was not killed between two checkpoints"
    checkpoint = found[0]
    assert not result_file(tmp_path / "killed" / "results").exists()

    subprocess.run(cmd, cwd=tmp_path, env=env, check=True, capture_output=True)
    straight = json.loads(result_file(tmp_path / "straight" / "results").read_text())
    resumed = json.loads(result_file(tmp_path / "killed" / "results").read_text())
    assert resumed["training"]["resumed_at"] and not straight["training"]["resumed_at"]
    assert len(resumed["training"]["segments"]) == 2 and resumed["training"]["segments"][1]["from_iteration"] > 0
    assert resumed["training"]["curve"] == straight["training"]["curve"]
    test_curve = straight["training"]["curve"]["test"]
    assert test_curve["metric"] == "mse@10" and test_curve["iteration"] == list(range(150, 3001, 150))
    assert resumed["episodes"] == straight["episodes"]
    assert resumed["metrics"] == straight["metrics"]
    assert not checkpoint.exists()  # a finished run leaves no stale checkpoint behind
    assert (checkpoint.parent / "final.pt").exists()
    curve = (tmp_path / "killed" / "results" / "plots" / "maml-sinusoid" / "smoke" / "maml-seed0.csv").read_text()
    assert curve.splitlines()[0] == "iteration,loss" and len(curve.splitlines()) == 1 + 3000 // 50


def test_a_run_another_process_is_training_is_a_clear_error_that_writes_nothing(tmp_path):
    from suite.io import exclusive_lock

    manifest = write_manifest(tmp_path)
    args = ["run", "--claim", "maml-sinusoid", "--profile", "smoke", "--run", "maml", "--no-progress"]
    with exclusive_lock(tmp_path / "checkpoints" / "maml-sinusoid" / "smoke" / "maml" / "seed0" / "training.lock"):
        out = suite(manifest, tmp_path / "r", *args)
    assert out.exit_code == 1
    assert (f"claim 'maml-sinusoid', run 'maml', seed 0 is being trained by another process (PID {os.getpid()})"
            in out.output)
    assert not (tmp_path / "r").exists()
    # the lock ends with its holder: the lock file left behind does not stop the next run
    assert suite(manifest, tmp_path / "r", *args).exit_code == 0
    assert result_file(tmp_path / "r").exists()


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status  # a zombie has exited, only its parent has not collected it


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads the process tree from Linux's /proc")
def test_workers_stop_when_suite_run_is_killed(tmp_path):
    manifest = write_manifest(tmp_path, maml={"iterations": 10**6}, pretrained={"iterations": 10**6})
    raw = yaml.safe_load(manifest.read_text())
    raw["claims"]["maml-sinusoid"]["profiles"]["smoke"]["execution"] = {"checkpoint_every": 50, "log_every": 50}
    manifest.write_text(yaml.safe_dump(raw, sort_keys=False))
    cmd = [sys.executable, "-m", "suite.cli", "--manifest", str(manifest), "run", "--claim", "maml-sinusoid",
           "--profile", "smoke", "--device", "cpu", "--no-progress", "--jobs", "2"]
    env = {**os.environ, "SUITE_RESULTS": str(tmp_path / "results"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = tmp_path / "checkpoints" / "maml-sinusoid" / "smoke"
    deadline = time.time() + 120
    while len(list(checkpoints.glob("*/seed0/*/latest.pt"))) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert len(list(checkpoints.glob("*/seed0/*/latest.pt"))) == 2, "both workers should be training"
    workers = [c for c in _children(proc.pid) if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()
               and b"resource_tracker" not in Path(f"/proc/{c}/cmdline").read_bytes()]
    assert len(workers) == 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 30
    while any(_alive(w) for w in workers) and time.time() < deadline:
        time.sleep(0.1)
    still = [w for w in workers if _alive(w)]
    for w in still:
        os.kill(w, signal.SIGKILL)
    assert not still, "a worker went on training after suite run was killed"


def test_a_new_evaluation_reuses_the_finished_training(tmp_path):
    manifest = write_manifest(tmp_path)
    args = ["run", "--claim", "maml-sinusoid", "--profile", "smoke", "--run", "maml", "--no-progress"]
    assert suite(manifest, tmp_path / "r", *args).exit_code == 0
    first = json.loads(result_file(tmp_path / "r").read_text())

    raw = yaml.safe_load(manifest.read_text())
    raw["claims"]["maml-sinusoid"]["profiles"]["smoke"]["evaluation"]["tasks"] = 25
    manifest.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert suite(manifest, tmp_path / "r", *args, "--overwrite").exit_code == 0
    second = json.loads(result_file(tmp_path / "r").read_text())
    assert second["config_hash"] != first["config_hash"]
    assert second["training"]["training_hash"] == first["training"]["training_hash"]
    assert second["training"]["segments"] == first["training"]["segments"]  # trained once, at the first run
    assert len(second["episodes"]["mse@1"]) == 25
    assert second["episodes"]["mse@1"][:20] == first["episodes"]["mse@1"]  # the same model on the same tasks

    raw["claims"]["maml-sinusoid"]["profiles"]["smoke"]["runs"]["maml"]["inner_lr"] = 0.02
    manifest.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert suite(manifest, tmp_path / "r", *args, "--overwrite").exit_code == 0
    third = json.loads(result_file(tmp_path / "r").read_text())
    assert third["training"]["training_hash"] != first["training"]["training_hash"]
    assert third["training"]["curve"] != first["training"]["curve"]  # trained anew
    run_checkpoints = tmp_path / "checkpoints" / "maml-sinusoid" / "smoke" / "maml" / "seed0"
    kept = [k for k in run_checkpoints.iterdir() if k.is_dir()]
    assert [k.name for k in kept] == [third["training"]["training_hash"]]  # beside the run's lock file


IDENTITY = """
import sys
from suite.protocol import load_manifest
from suite.training.identity import numerics, training_identity
cfg = load_manifest(sys.argv[1]).claim("reptile-k-ablation").run_configs("smoke", runs=["g2"])[0]
print(training_identity(cfg), cfg.hash, numerics(cfg))
"""


def test_a_runs_identity_is_its_configuration_and_numerics_versions_not_its_source_files(tmp_path):
    """A comment or whitespace in an algorithm module keeps the identity (and so checkpoints and results); a bumped
    numerics version changes it."""
    copy = tmp_path / "src"
    shutil.copytree(REPO / "suite", copy / "suite", ignore=shutil.ignore_patterns("__pycache__"))

    def identity():
        out = subprocess.run([sys.executable, "-c", IDENTITY, str(REPO / "benchmarks.yaml")], capture_output=True,
                             text=True, env={**os.environ, "PYTHONPATH": str(copy)}, cwd=tmp_path, timeout=120)
        assert out.returncode == 0, out.stderr
        return out.stdout

    before = identity()
    module = copy / "suite" / "algorithms" / "reptile.py"
    module.write_text(module.read_text().replace("\n\n\ndef ", "\n\n\n# a comment\ndef ", 1) + "\n\n")
    assert identity() == before
    module.write_text(module.read_text().replace("NUMERICS_VERSION = 1", "NUMERICS_VERSION = 2"))
    after = identity()
    assert after != before and "'algorithm/reptile': 2" in after
    assert after.split()[1] == before.split()[1]  # the configuration's hash is the same: results say which changed


def test_a_learning_curve_makes_its_evaluation_settings_part_of_the_training():
    from suite.protocol.manifest import load_manifest
    from suite.training.identity import training_identity

    claim = load_manifest(REPO / "benchmarks.yaml").claim("reptile-k-ablation")
    cfg = {c.run: c for c in claim.run_configs("smoke")}
    with_curve, without = cfg["g2"], cfg["shared-k2"]

    def with_evaluation(cfg, **changes):
        return type(cfg)(**{**cfg.__dict__, "evaluation": {**cfg.evaluation, **changes}})

    assert training_identity(with_curve) != training_identity(with_evaluation(with_curve, steps=[0, 3]))
    # the final evaluation's own settings do not touch the curve, so they reuse the training
    assert training_identity(with_curve) == training_identity(with_evaluation(with_curve, tasks=7, seed=5))
    assert training_identity(without) == training_identity(with_evaluation(without, steps=[0, 3], tasks=7))


def test_auto_takes_vmap_for_small_conv_tasks_on_a_cpu_the_grouped_path_for_larger_ones_and_mlps_but_the_loop_for_large_second_order_ones():
    import torch

    from suite.protocol.manifest import load_manifest
    from suite.training.paths import choose_path
    from suite.training.run import build_model

    manifest = load_manifest(REPO / "benchmarks.yaml")
    omniglot = {c.run: c for c in manifest.claim("omniglot-maml").run_configs()}
    cpu, cuda = torch.device("cpu"), torch.device("cuda")

    def path(cfg, device=cpu, requested="auto"):
        return choose_path(cfg, build_model(cfg), device, requested)

    assert path(omniglot["n5-k1"]) == "vmap"  # 10 images a task: measured 2-2.9x the loop
    assert path(omniglot["n20-k1"]) == "grouped"  # 40 images a task
    assert path(omniglot["n5-k5"]) == "loop"  # 50 images, second order: the grouped path's double backward loses
    imaml = {c.run: c for c in manifest.claim("imaml-omniglot").run_configs()}
    assert path(imaml["gd-n5-k1"]) == "grouped"  # 10 images, but Hessian-vector products: nested under vmap
    anil = {c.run: c for c in manifest.claim("anil-omniglot").run_configs()}
    assert {path(cfg) for cfg in anil.values() if cfg.algorithm == "anil"} <= {"vmap", "grouped"}
    assert path(omniglot["n20-k1"], cuda) == "vmap"
    assert path(omniglot["n5-k1"], requested="loop") == "loop"
    sinusoid = manifest.claim("maml-sinusoid").run_configs()[0]
    assert path(sinusoid) == "grouped"  # an MLP: 1.2x vmap; the committed paper result (vmap) stays current
    # serial Reptile (25 images a task) now takes the grouped path; its committed paper result, trained on the loop,
    # stays current (test_a_result_records_its_path_and_another_path_does_not_make_it_stale)
    ablation = manifest.claim("reptile-k-ablation").run_configs(runs=["g3"])[0]
    assert path(ablation) == "grouped"
    # MAML++'s per-step running statistics are updated task by task: the loop, whatever is asked
    mamlpp = {c.run: c for c in manifest.claim("mamlpp-omniglot").run_configs(seeds=[0])}
    assert {path(mamlpp["n5-k1"], device, asked) for device in (cpu, cuda) for asked in ("auto", "vmap")} == {"loop"}
    assert path(mamlpp["n20-k1-maml"]) == "grouped" and path(mamlpp["n20-k1-maml"], requested="vmap") == "vmap"


def test_a_result_records_its_path_and_another_path_does_not_make_it_stale(tmp_path):
    manifest = write_manifest(tmp_path)
    args = ["run", "--claim", "maml-sinusoid", "--profile", "smoke", "--device", "cpu", "--no-progress",
            "--run", "maml"]
    first = suite(manifest, tmp_path / "r", *args, "--path", "loop")
    assert first.exit_code == 0, first.output
    record = json.loads(result_file(tmp_path / "r").read_text())
    assert record["path"] == "loop" and record["provenance"]["vectorized_over_tasks"] is False
    again = suite(manifest, tmp_path / "r", *args, "--path", "vmap")
    assert again.exit_code == 0, again.output
    assert "already done" in again.output
    assert json.loads(result_file(tmp_path / "r").read_text()) == record


def test_a_run_stopped_at_its_time_limit_checkpoints_there_and_resumes_to_the_uninterrupted_numbers(tmp_path,
                                                                                                   monkeypatch):
    import types

    import torch

    from suite.training import loop
    manifest = write_manifest(tmp_path, maml={"iterations": 3000})
    raw = yaml.safe_load(manifest.read_text())
    raw["claims"]["maml-sinusoid"]["profiles"]["smoke"]["execution"] = {"checkpoint_every": 1000, "log_every": 8}
    manifest.write_text(yaml.safe_dump(raw, sort_keys=False))
    args = ["run", "--claim", "maml-sinusoid", "--profile", "smoke", "--run", "maml", "--device", "cpu",
            "--no-progress", "--no-sensitivity"]
    assert suite(manifest, tmp_path / "straight" / "results", *args).exit_code == 0

    clock = iter(range(10**6))  # the training's clock ticks once an iteration: it stops at iteration 500
    monkeypatch.setattr(loop, "time", types.SimpleNamespace(time=lambda: next(clock), perf_counter=time.perf_counter))
    monkeypatch.setenv(loop.STOP_AT, "500")
    stopped = suite(manifest, tmp_path / "stopped" / "results", *args)
    assert stopped.exit_code == 0, stopped.output
    assert "maml-sinusoid/maml seed 0: stopped at the time limit after iteration 500 of 3,000" in stopped.output
    assert not result_file(tmp_path / "stopped" / "results").exists()
    checkpoint, = (tmp_path / "stopped" / "checkpoints" / "maml-sinusoid" / "smoke" / "maml" / "seed0").glob(
        "*/latest.pt")
    assert torch.load(checkpoint, weights_only=False)["iteration"] == 500  # not a multiple of log_every
    progress = json.loads((result_file(tmp_path / "stopped" / "results").parent / "progress.json").read_text())
    assert progress["iteration"] == 500 and progress["iterations"] == 3000 and progress["path"] == "grouped"
    assert progress["segments"][0]["iterations"] == 500 and progress["segments"][0]["device"] == "cpu"
    assert progress["curve"]["iteration"] == list(range(8, 500, 8))  # the curve so far, for the report to draw

    monkeypatch.delenv(loop.STOP_AT)
    assert suite(manifest, tmp_path / "stopped" / "results", *args).exit_code == 0
    straight = json.loads(result_file(tmp_path / "straight" / "results").read_text())
    resumed = json.loads(result_file(tmp_path / "stopped" / "results").read_text())
    assert resumed["training"]["resumed_at"] == [500]
    assert not (result_file(tmp_path / "stopped" / "results").parent / "progress.json").exists()
    assert resumed["training"]["curve"] == straight["training"]["curve"]  # the loss window across the stop too
    assert resumed["training"]["curve"]["loss"][:62] == progress["curve"]["loss"]
    assert resumed["metrics"] == straight["metrics"] and resumed["episodes"] == straight["episodes"]


def test_a_parked_training_resumes_on_another_machine_and_its_copy_goes_when_it_lands(tmp_path, monkeypatch):
    """suite park carries a training in progress through git (checkpoints-in-progress/); a clone without
    checkpoints/ resumes it to the uninterrupted numbers, and the parked copy is removed with the result."""
    import types

    from suite.results.store import load_progress
    from suite.training import loop
    manifest = write_manifest(tmp_path, maml={"iterations": 1000})
    args = ["run", "--claim", "maml-sinusoid", "--profile", "smoke", "--run", "maml", "--device", "cpu",
            "--no-progress", "--no-sensitivity"]
    assert suite(manifest, tmp_path / "straight" / "results", *args).exit_code == 0
    clock = iter(range(10**6))  # stops at iteration 700
    monkeypatch.setattr(loop, "time", types.SimpleNamespace(time=lambda: next(clock), perf_counter=time.perf_counter))
    monkeypatch.setenv(loop.STOP_AT, "700")
    first = tmp_path / "first"
    assert suite(manifest, first / "results", *args).exit_code == 0
    monkeypatch.delenv(loop.STOP_AT)

    out = suite(manifest, first / "results", "park")
    assert out.exit_code == 0 and "maml-sinusoid/smoke/maml seed 0 (700 of 1,000): parked" in out.output, out.output
    parked, = (first / "checkpoints-in-progress" / "maml-sinusoid" / "smoke" / "maml" / "seed0").glob("*/latest.pt")
    local, = (first / "checkpoints" / "maml-sinusoid" / "smoke" / "maml" / "seed0").glob("*/latest.pt")
    assert parked.read_bytes() == local.read_bytes()

    second = tmp_path / "second"  # a fresh clone: what git carries (results/ and the parked copy), no checkpoints/
    shutil.copytree(first / "results", second / "results")
    shutil.copytree(first / "checkpoints-in-progress", second / "checkpoints-in-progress")
    assert [p["_resumable"] for p in load_progress(second / "results")] == ["parked"]
    assert "paper in progress" not in suite(manifest, second / "results", "list").output  # a smoke training
    assert suite(manifest, second / "results", *args).exit_code == 0
    resumed = json.loads(result_file(second / "results").read_text())
    straight = json.loads(result_file(tmp_path / "straight" / "results").read_text())
    assert resumed["training"]["resumed_at"] == [700]
    assert resumed["metrics"] == straight["metrics"] and resumed["training"]["curve"] == straight["training"]["curve"]
    assert not (second / "checkpoints-in-progress").exists()  # landed: the copy and its empty folders are gone
    assert not list(second.glob("results/*/*/*/seed0/progress.json"))


def test_progress_whose_checkpoint_is_nowhere_is_not_progress(tmp_path):
    from suite.results.store import load_progress
    from suite.training.parking import CHECKPOINTS, LATEST, PARKED

    folder = "maml-sinusoid/paper/maml/seed0/0123456789abcdef"
    record = {"claim": "maml-sinusoid", "profile": "paper", "run": "maml", "seed": 0, "iteration": 2000,
              "iterations": 70000, "checkpoint": f"{CHECKPOINTS}/{folder}"}
    progress = tmp_path / "results" / "maml-sinusoid" / "paper" / "maml" / "seed0" / "progress.json"
    progress.parent.mkdir(parents=True)
    progress.write_text(json.dumps(record))
    assert load_progress(tmp_path / "results") == []  # its checkpoint went with another machine
    assert [p["_resumable"] for p in load_progress(tmp_path / "results", resumable_only=False)] == [None]
    out = suite(write_manifest(tmp_path), tmp_path / "results", "park")
    assert "maml-sinusoid/paper/maml seed 0 (2,000 of 70,000): no checkpoint here or parked" in out.output
    (tmp_path / PARKED / folder).mkdir(parents=True)
    (tmp_path / PARKED / folder / LATEST).write_bytes(b"parked")
    assert [p["_resumable"] for p in load_progress(tmp_path / "results")] == ["parked"]
    (tmp_path / CHECKPOINTS / folder).mkdir(parents=True)
    (tmp_path / CHECKPOINTS / folder / LATEST).write_bytes(b"newer")
    assert [p["_resumable"] for p in load_progress(tmp_path / "results")] == ["here"]
    assert "parked, 0.0 MiB" in suite(write_manifest(tmp_path), tmp_path / "results", "park").output
    assert (tmp_path / PARKED / folder / LATEST).read_bytes() == b"newer"


def test_a_variants_training_in_progress_is_found_and_parked(tmp_path):
    """A retraining sensitivity variant writes its progress.json in its variant folder; suite park parks its
    checkpoint like a run's, naming the variant (a progress.json of older code, without its variant, too)."""
    from suite.results.store import load_progress
    from suite.training.parking import CHECKPOINTS, LATEST, PARKED

    folder = "maml-sinusoid/paper/maml/seed0/fedcba9876543210"
    record = {"claim": "maml-sinusoid", "profile": "paper", "run": "maml", "seed": 0, "iteration": 2000,
              "iterations": 70000, "checkpoint": f"{CHECKPOINTS}/{folder}"}
    progress = tmp_path / "results" / "maml-sinusoid" / "paper" / "maml" / "seed0" / "variants" / "code-inner-lr" \
        / "progress.json"
    progress.parent.mkdir(parents=True)
    progress.write_text(json.dumps(record))
    (tmp_path / CHECKPOINTS / folder).mkdir(parents=True)
    (tmp_path / CHECKPOINTS / folder / LATEST).write_bytes(b"variant")
    assert [(p["variant"], p["_resumable"]) for p in load_progress(tmp_path / "results")] == [("code-inner-lr", "here")]
    out = suite(write_manifest(tmp_path), tmp_path / "results", "park")
    assert "maml-sinusoid/paper/maml variant code-inner-lr seed 0 (2,000 of 70,000): parked" in out.output, out.output
    assert (tmp_path / PARKED / folder / LATEST).read_bytes() == b"variant"


def test_time_limit_stops_every_training_and_still_reports(tmp_path, monkeypatch):
    import types

    from suite import cli
    from suite.training import loop
    monkeypatch.setenv(loop.STOP_AT, "")  # the command sets it in this process: undone after the test
    clock = iter([0.0, 10.0**12])  # the limit is set at time 0 and found passed at the end
    monkeypatch.setattr(cli, "time", types.SimpleNamespace(time=lambda: next(clock)))
    manifest = write_manifest(tmp_path)
    out = suite(manifest, tmp_path / "results", "run", "--claim", "maml-sinusoid", "--profile", "smoke",
                "--device", "cpu", "--no-progress", "--time-limit", "0.0001")
    assert out.exit_code == 0, out.output
    for run in ("maml", "pretrained"):
        assert f"maml-sinusoid/{run} seed 0: stopped at the time limit after iteration 0 of" in out.output
    assert "sensitivity variants not measured: the time limit has passed" in out.output
    assert "# Reproduction report" in out.output
    assert not result_file(tmp_path / "results").exists()


def test_auto_resumes_a_training_on_the_path_it_began_with(tmp_path):
    import torch

    from suite.protocol.manifest import load_manifest
    from suite.training.layout import checkpoint_dir
    from suite.training.run import resumed_path

    cfg = load_manifest(REPO / "benchmarks.yaml").claim("maml-sinusoid").run_configs("smoke", runs=["maml"])[0]
    root = tmp_path / "results"
    assert resumed_path(root, cfg, None) == "auto"  # nothing begun: auto chooses (grouped, for an MLP on CPU)
    begun = checkpoint_dir(root, cfg, None, "loop")
    begun.mkdir(parents=True)
    torch.save({}, begun / "latest.pt")
    assert resumed_path(root, cfg, None) == "loop"


def test_trainings_under_way_go_first_so_a_restarted_campaign_finishes_what_it_began(tmp_path, monkeypatch):
    from suite.protocol.manifest import load_manifest
    from suite.training import parallel
    from suite.training.identity import numerics
    from suite.training.parking import LATEST, PARKED

    configs = load_manifest(REPO / "benchmarks.yaml").claim("maml-sinusoid").run_configs("smoke")
    names = [cfg.run for cfg in configs]
    assert names == ["maml", "pretrained"]
    root = tmp_path / "results"
    pretrained = configs[1]
    folder = "maml-sinusoid/smoke/pretrained/seed0/0123456789abcdef"
    progress = root / "maml-sinusoid" / "smoke" / "pretrained" / "seed0" / "progress.json"
    progress.parent.mkdir(parents=True)

    def begun(config_hash):
        progress.write_text(json.dumps({"config_hash": config_hash, "numerics": numerics(pretrained),
                                        "checkpoint": f"checkpoints/{folder}"}))
        return [cfg.run for cfg in parallel.under_way_first(configs, root)]

    assert begun(pretrained.hash) == names  # its checkpoint is nowhere: nothing to go on with
    (tmp_path / PARKED / folder).mkdir(parents=True)
    (tmp_path / PARKED / folder / LATEST).write_bytes(b"parked")
    assert begun("another configuration") == names
    assert begun(pretrained.hash) == ["pretrained", "maml"]

    order = []  # the runner trains in that order
    monkeypatch.setattr(parallel, "train_and_evaluate", lambda cfg, *args: order.append(cfg.run))
    parallel.train_and_evaluate_all(configs, root, torch.device("cpu"), {}, tmp_path / "datasets")
    assert order == ["pretrained", "maml"]


def test_a_finished_paper_training_is_kept_and_a_clone_measures_a_later_variant_on_it(tmp_path):
    """The runner keeps a paper run's final.pt in trained-models/ (tracked by git) when it writes the result; a
    clone with results/ and trained-models/ but no checkpoints/ evaluates an evaluation-only variant on that model
    without training."""
    raw = yaml.safe_load((REPO / "benchmarks.yaml").read_text())
    raw["claims"]["maml-sinusoid"]["runs"]["maml"]["iterations"] = 20  # a paper run in a second
    manifest = tmp_path / "bench.yaml"
    manifest.write_text(yaml.safe_dump(raw, sort_keys=False))
    first, second = tmp_path / "first", tmp_path / "second"
    out = suite(manifest, first / "results", "run", "--claim", "maml-sinusoid", "--profile", "paper", "--run",
                "maml", "--seed", "0", "--device", "cpu", "--no-progress", "--no-sensitivity")
    assert out.exit_code == 0, out.output
    base = json.loads(result_file(first / "results", profile="paper").read_text())
    kept, = (first / "trained-models" / "maml-sinusoid" / "paper" / "maml" / "seed0").glob("*/final.pt")
    local, = (first / "checkpoints" / "maml-sinusoid" / "paper" / "maml" / "seed0").glob("*/final.pt")
    assert kept.read_bytes() == local.read_bytes() and kept.parent.name == local.parent.name

    shutil.copytree(first / "results", second / "results")  # what git carries: no checkpoints/
    shutil.copytree(first / "trained-models", second / "trained-models")
    out = suite(manifest, second / "results", "sensitivity", "--claim", "maml-sinusoid", "--variant",
                "test-lr-code", "--seed", "0", "--device", "cpu", "--no-progress")
    assert out.exit_code == 0, out.output
    variant = json.loads((result_file(second / "results", profile="paper").parent / "variants" / "test-lr-code" /
                          "results.json").read_text())
    assert variant["training"]["training_hash"] == base["training"]["training_hash"]
    assert variant["provenance"]["train_seconds"] == 0.0
    assert variant["metrics"]["mse@0"] == base["metrics"]["mse@0"]  # the kept model, before fine-tuning
    assert [p.read_bytes() for p in (second / "trained-models").rglob("*.pt")] == [kept.read_bytes()]  # nothing new


def test_meta_batches_drawn_ahead_by_workers_are_those_drawn_in_place(tmp_path, monkeypatch):
    """suite run --prefetch: worker processes draw iteration i's tasks from its own seed and hand back the generator
    after the draw, so the step sees the same tasks and the same stream as without them; and a run's numbers too."""
    from suite.protocol.manifest import load_manifest
    from suite.training.prefetch import PREFETCH, meta_batches
    from suite.training.run import build

    monkeypatch.setenv(PREFETCH, "0")  # `suite run --prefetch` sets it for its workers: gone after this test

    cfg = load_manifest(REPO / "benchmarks.yaml").claim("maml-sinusoid").run_configs("smoke", runs=["maml"])[0]
    family, _ = build(cfg, tmp_path)
    here = list(meta_batches(family, (4, 5, 5), 0, 3, 9, workers=0))
    ahead = list(meta_batches(family, (4, 5, 5), 0, 3, 9, workers=2))
    assert [it for it, _, _ in ahead] == list(range(3, 9))
    for (_, tasks, generator), (_, other, other_generator) in zip(here, ahead):
        assert all(torch.equal(a, b) for a, b in zip(tasks.tensors(), other.tensors()))
        assert torch.equal(torch.rand(3, generator=generator), torch.rand(3, generator=other_generator))
    assert not torch.equal(here[0][1].support_x, here[1][1].support_x)  # each iteration its own tasks

    manifest = write_manifest(tmp_path, maml={"iterations": 40})
    args = ["run", "--claim", "maml-sinusoid", "--profile", "smoke", "--run", "maml", "--device", "cpu",
            "--no-progress", "--no-sensitivity"]
    assert suite(manifest, tmp_path / "here" / "results", *args).exit_code == 0
    out = suite(manifest, tmp_path / "ahead" / "results", *args, "--prefetch", "2")
    assert out.exit_code == 0, out.output
    here, ahead = (json.loads(result_file(tmp_path / p / "results").read_text()) for p in ("here", "ahead"))
    assert ahead["metrics"] == here["metrics"] and ahead["training"]["curve"] == here["training"]["curve"]


def test_a_captured_step_is_the_eager_update_on_static_buffers(tmp_path):
    """suite.training.graphs.CapturedStep (suite run --cuda-graph) on a CPU, where it runs the learner's update on
    the static buffers each meta-batch is copied into: the eager step's numbers exactly (scripts/gpu_check.py
    compares the captured graph with the eager step on a GPU)."""
    from suite.protocol.manifest import load_manifest
    from suite.training.graphs import CapturedStep, make_capturable
    from suite.training.prefetch import draw
    from suite.training.run import build, initial_params, make_learner

    cfg = load_manifest(REPO / "benchmarks.yaml").claim("maml-sinusoid").run_configs("smoke", runs=["maml"])[0]
    family, model = build(cfg, tmp_path)
    params = initial_params(cfg, model, torch.device("cpu"))
    eager, captured = (make_learner(cfg, model, params, "grouped") for _ in range(2))
    step = CapturedStep(captured, torch.device("cpu")).step
    for it in range(5):
        tasks, generator = draw(family, (4, 5, 5), 0, it)
        assert step(tasks, it, generator) == eager.step(tasks, it, generator)
    assert all(torch.equal(eager.params[k], captured.params[k]) for k in params)
    assert not torch.equal(captured.params["0.weight"], params["0.weight"])  # it did train
    with pytest.raises(ValueError, match="meta-batches of one shape"):
        step(draw(family, (3, 5, 5), 0, 5)[0], 5, None)
    with pytest.raises(ValueError, match="cannot be captured"):
        CapturedStep(type("Reptile", (), {"capturable": False})(), torch.device("cpu"))
    make_capturable(eager.optimizer, torch.device("cpu"))  # on a GPU: Adam's step counts go to the device
    assert all(g["capturable"] for g in eager.optimizer.param_groups)
    assert all(s["step"].dtype == torch.float32 for s in eager.optimizer.state.values())


def test_cuda_graph_asks_for_a_gpu(tmp_path):
    out = suite(write_manifest(tmp_path), tmp_path / "results", "run", "--claim", "maml-sinusoid", "--profile",
                "smoke", "--device", "cpu", "--cuda-graph")
    assert out.exit_code == 2 and "--cuda-graph captures the step on a GPU; the device here is cpu" in out.output
    assert not (tmp_path / "results").exists()


def twin_manifest(tmp_path) -> Path:
    """maml-sinusoid with a paper run `maml-k10` that trains as `maml` does (20 iterations) and tests with 10 shots:
    a twin, as Reptile's 1- and 5-shot runs are."""
    raw = yaml.safe_load((REPO / "benchmarks.yaml").read_text())
    runs = raw["claims"]["maml-sinusoid"]["runs"]
    runs["maml"]["iterations"] = 20
    runs["maml-k10"] = {**runs["maml"], "evaluation": {"shots": 10}}
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_runs_that_train_alike_train_once_and_the_twin_measures_what_it_would_alone(tmp_path):
    """Two runs of one claim with the same training configuration (only their test shots differ) are trained once:
    the twin is evaluated on the first's final.pt, says so, records no training time and keeps no copy of the model;
    its numbers are those it gets trained on its own."""
    from suite.protocol import load_manifest
    from suite.training.parallel import training_order

    manifest = twin_manifest(tmp_path)
    configs = load_manifest(manifest).claim("maml-sinusoid").run_configs("paper", seeds=[0])
    assert [[c.run for c in g] for g in training_order(configs, tmp_path / "results")] == [
        ["maml", "maml-k10"], ["pretrained"]]
    shared, alone = tmp_path / "shared" / "results", tmp_path / "alone" / "results"
    args = ["--profile", "paper", "--seed", "0", "--device", "cpu", "--no-progress", "--no-sensitivity"]
    out = suite(manifest, shared, "run", "--claim", "maml-sinusoid", "--run", "maml-k10", "--run", "maml", *args)
    assert out.exit_code == 0, out.output
    assert "maml-sinusoid / maml-k10 (seed 0" in out.output and "evaluated on maml's training (the same)" in out.output
    assert out.output.index("/ maml (seed 0") < out.output.index("/ maml-k10 (seed 0")  # listed as they train
    first = json.loads(result_file(shared, "maml", "paper").read_text())
    twin = json.loads(result_file(shared, "maml-k10", "paper").read_text())
    assert twin["training"]["trained_by"] == "maml" and "trained_by" not in first["training"]
    assert twin["training"]["training_hash"] == first["training"]["training_hash"]
    assert twin["training"]["curve"] == first["training"]["curve"]
    assert twin["provenance"]["train_seconds"] == 0.0 and first["provenance"]["train_seconds"] > 0
    kept = sorted(p.relative_to(shared.parent / "trained-models").parts[2] for p in
                  (shared.parent / "trained-models").rglob("final.pt"))
    assert kept == ["maml"]  # the twin's model is the first's, kept once

    out = suite(manifest, shared, "run", "--claim", "maml-sinusoid", "--run", "maml-k10", "--run", "maml",
                "--overwrite", *args)  # trained again: the first retrains, the twin takes that training, not its copy
    assert out.exit_code == 0, out.output
    again = json.loads(result_file(shared, "maml", "paper").read_text())
    assert again["provenance"]["train_seconds"] > 0 and "trained_by" not in again["training"]
    assert json.loads(result_file(shared, "maml-k10", "paper").read_text())["training"]["trained_by"] == "maml"

    out = suite(manifest, alone, "run", "--claim", "maml-sinusoid", "--run", "maml-k10", *args)
    assert out.exit_code == 0, out.output
    own = json.loads(result_file(alone, "maml-k10", "paper").read_text())
    assert "trained_by" not in own["training"] and own["provenance"]["train_seconds"] > 0
    assert own["training"]["curve"] == twin["training"]["curve"]
    assert own["metrics"] == twin["metrics"] and own["metrics"] != first["metrics"]


def cross_claim_manifest(tmp_path) -> Path:
    """maml-sinusoid (its `maml` run trains 20 iterations) and a second claim, sinusoid-other-tasks, whose runs are
    its runs tested on other tasks (another evaluation seed): the same trainings asked for by two claims, as
    omniglot-maml's n5-k5 and freeze-layer-omniglot's n5-k5 are."""
    raw = yaml.safe_load((REPO / "benchmarks.yaml").read_text())
    claim = raw["claims"]["maml-sinusoid"]
    claim["runs"]["maml"]["iterations"] = 20
    other = raw["claims"]["sinusoid-other-tasks"] = yaml.safe_load(yaml.safe_dump(claim))
    other["evaluation"]["seed"] += 10
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_a_training_two_claims_ask_for_trains_once_and_the_other_claim_measures_what_it_would_alone(tmp_path):
    """A run whose training identity another claim's run has already trained is evaluated on that run's model, says
    so and records no training time; its numbers are those it gets trained on its own. While that training is under
    way, it waits for it with a clear error naming the other claim's command."""
    from suite.training.parking import LATEST, PARKED

    manifest = cross_claim_manifest(tmp_path)
    shared, alone, waiting = (tmp_path / name / "results" for name in ("shared", "alone", "waiting"))
    args = ["--profile", "paper", "--seed", "0", "--run", "maml", "--device", "cpu", "--no-progress",
            "--no-sensitivity"]
    out = suite(manifest, shared, "run", "--claim", "maml-sinusoid", *args)
    assert out.exit_code == 0, out.output
    out = suite(manifest, shared, "run", "--claim", "sinusoid-other-tasks", *args)
    assert out.exit_code == 0, out.output
    assert "sinusoid-other-tasks / maml (seed 0" in out.output
    assert "evaluated on maml-sinusoid/maml's training (the same)" in out.output
    first = json.loads(result_file(shared, "maml", "paper").read_text())
    other = json.loads((shared / "sinusoid-other-tasks" / "paper" / "maml" / "seed0" / "results.json").read_text())
    assert other["training"]["trained_by"] == "maml-sinusoid/maml" and "trained_by" not in first["training"]
    assert other["training"]["curve"] == first["training"]["curve"]
    assert other["provenance"]["train_seconds"] == 0.0 and first["provenance"]["train_seconds"] > 0
    kept = [p.relative_to(shared.parent / "trained-models").parts[0]
            for p in (shared.parent / "trained-models").rglob("final.pt")]
    assert kept == ["maml-sinusoid"]  # one training, kept once
    out = suite(manifest, shared, "report", "--figures", str(tmp_path / "figures"))
    assert out.exit_code == 0, out.output
    assert (tmp_path / "figures" / "sinusoid-other-tasks-learning-curves.png").is_file()  # its training's curve

    out = suite(manifest, alone, "run", "--claim", "sinusoid-other-tasks", *args)
    assert out.exit_code == 0, out.output
    own = json.loads((alone / "sinusoid-other-tasks" / "paper" / "maml" / "seed0" / "results.json").read_text())
    assert "trained_by" not in own["training"] and own["provenance"]["train_seconds"] > 0
    assert own["training"]["curve"] == other["training"]["curve"]
    assert own["metrics"] == other["metrics"] and own["metrics"] != first["metrics"]

    identity, = [p.parent.name for p in (tmp_path / "shared" / "checkpoints").glob("maml-sinusoid/paper/maml/seed0/*/"
                                                                                    "final.pt")]
    parked = tmp_path / "waiting" / PARKED / "maml-sinusoid" / "paper" / "maml" / "seed0" / identity / LATEST
    parked.parent.mkdir(parents=True)
    parked.write_bytes(b"maml-sinusoid's training, under way on another machine")
    out = suite(manifest, waiting, "run", "--claim", "sinusoid-other-tasks", *args)
    assert out.exit_code == 1
    assert ("run 'maml', seed 0: its training is that of maml-sinusoid's run 'maml' (the same training "
            "configuration; the evaluation differs), which is under way; `suite run --claim maml-sinusoid --profile "
            "paper --run maml` finishes it; this command then evaluates") in " ".join(out.output.split())
    assert not list(waiting.rglob("*.json"))


def test_a_run_whose_twin_is_training_waits_for_it_with_a_clear_error_that_writes_nothing(tmp_path):
    from suite.training.parking import LATEST, PARKED

    manifest = twin_manifest(tmp_path)
    root = tmp_path / "results"
    args = ["--profile", "paper", "--seed", "0", "--device", "cpu", "--no-progress", "--no-sensitivity"]
    out = suite(manifest, tmp_path / "probe" / "results", "run", "--claim", "maml-sinusoid", "--run", "maml", *args)
    assert out.exit_code == 0, out.output
    identity, = [p.parent.name for p in (tmp_path / "probe" / "checkpoints").glob("maml-sinusoid/paper/maml/seed0/*/"
                                                                                   "final.pt")]
    parked = tmp_path / PARKED / "maml-sinusoid" / "paper" / "maml" / "seed0" / identity / LATEST
    parked.parent.mkdir(parents=True)
    parked.write_bytes(b"maml's training, under way on another machine")
    out = suite(manifest, root, "run", "--claim", "maml-sinusoid", "--run", "maml-k10", *args)
    assert out.exit_code == 1
    assert ("run 'maml-k10', seed 0: its training is that of run 'maml' (the same training configuration; the "
            "evaluation differs), which is under way; `suite run --claim maml-sinusoid --profile paper --run maml "
            "--run maml-k10` finishes it") in " ".join(out.output.split())
    assert not (tmp_path / "checkpoints").exists() and not list(root.rglob("*.json"))

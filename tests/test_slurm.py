"""A real Slurm cluster on this machine: Debian's slurmctld, slurmd and munge (installed here if missing and this is
root with apt), configured in a temporary folder and started and stopped by this file's fixture by PID, touching
nothing it did not start. A smoke claim goes through sbatch as a job array; one job is cancelled mid-run with
scancel; the submission names it, the other finishes; a second `suite run` submits only the cancelled run, which
resumes from its checkpoint; the results equal a run here bit for bit.

Where Slurm cannot be installed or started (no root, no apt, no network to Debian's packages), the test skips and
says why: `pytest -rs` shows it."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DAEMONS = ("slurmctld", "slurmd", "munged")
PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")


def installed() -> bool:
    return all(shutil.which(d) or Path(f"/usr/sbin/{d}").exists() for d in DAEMONS) and shutil.which("sbatch")


def install_or_skip():
    if installed():
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("Slurm is not installed and this is not root with apt-get: "
                    f"apt-get install {' '.join(PACKAGES)} to run this test")
    done = subprocess.run(["apt-get", "install", "-y", "-q", *PACKAGES], capture_output=True, text=True,
                          env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, timeout=600)
    if done.returncode != 0 or not installed():
        pytest.skip(f"could not install Slurm ({' '.join(PACKAGES)}) with apt-get: {done.stderr.strip()[-300:]}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def daemon(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A one-node cluster: {SLURM_CONF: its slurm.conf}, for the clients' environment."""
    install_or_skip()
    if os.geteuid() != 0:
        pytest.skip("the test cluster runs its daemons as root (SlurmUser=root)")
    folder = tmp_path_factory.mktemp("slurm")
    host = socket.gethostname().split(".")[0]
    key = folder / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    (folder / "state").mkdir()
    (folder / "spool").mkdir()
    memory = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 // 2
    conf = folder / "slurm.conf"
    conf.write_text("\n".join([
        "ClusterName=suitetest", f"SlurmctldHost={host}", "AuthType=auth/munge",
        f"AuthInfo=socket={folder}/munge.socket", "CredType=cred/munge", "SlurmUser=root", "SlurmdUser=root",
        f"SlurmctldPort={free_port()}", f"SlurmdPort={free_port()}", f"StateSaveLocation={folder}/state",
        f"SlurmdSpoolDir={folder}/spool", f"SlurmctldPidFile={folder}/slurmctld.pid",
        f"SlurmdPidFile={folder}/slurmd.pid", f"SlurmctldLogFile={folder}/slurmctld.log",
        f"SlurmdLogFile={folder}/slurmd.log", "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
        "SchedulerType=sched/builtin", "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core_Memory",
        "ReturnToService=2", "MpiDefault=none",
        "KillWait=2",  # scancel's SIGTERM, which submitit's jobs ignore, is followed by SIGKILL 2 s later, not 30 "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",  # no slurmdbd: sacct cannot answer (suite.training.cluster)
        f"NodeName={host} CPUs={os.cpu_count()} RealMemory={memory} State=UNKNOWN",
        f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP", ""]))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    started = []
    try:
        started.append(subprocess.Popen(
            [daemon("munged"), "--foreground", f"--key-file={key}", f"--socket={folder}/munge.socket",
             f"--pid-file={folder}/munged.pid", f"--log-file={folder}/munged.log", f"--seed-file={folder}/seed",
             "--force"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
        time.sleep(1)
        started.append(subprocess.Popen([daemon("slurmctld"), "-D", "-i", "-f", str(conf)], env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
        started.append(subprocess.Popen([daemon("slurmd"), "-D", "-f", str(conf)], env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
        for _ in range(60):
            state = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True)
            if state.stdout.strip() == "idle":
                break
            time.sleep(1)
        else:
            logs = "".join(p.read_text()[-500:] for p in folder.glob("*.log"))
            pytest.skip(f"the test cluster's node did not become idle in 60 s; logs: {logs}")
        yield {"SLURM_CONF": str(conf)}
        # let every job leave the queue and its steps report back (to slurmctld, through munge) before the
        # daemons stop, so that no slurmstepd is left retrying
        for _ in range(120):
            queue = subprocess.run(["squeue", "-h"], env=env, capture_output=True, text=True).stdout.strip()
            node = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True).stdout
            if not queue and node.strip() == "idle":
                break
            time.sleep(1)
    finally:
        for process in reversed(started):  # only what this fixture started, by its PID
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def manifest(tmp_path) -> Path:
    """maml-sinusoid's smoke profile with a longer maml run (tens of seconds, checkpointed every 500 iterations)
    and no sensitivity variant, so that a job can be cancelled mid-run."""
    raw = yaml.safe_load((REPO / "benchmarks.yaml").read_text())
    smoke = raw["claims"]["maml-sinusoid"]["profiles"]["smoke"]
    smoke["runs"]["maml"]["iterations"] = 16000
    smoke["execution"] = {"checkpoint_every": 500, "log_every": 100}
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def suite_run(bench, results, *args, env=None, **popen):
    command = [sys.executable, "-m", "suite.cli", "--manifest", str(bench), "--results", str(results), "run",
               "--claim", "maml-sinusoid", "--profile", "smoke", "--device", "cpu", "--no-progress",
               "--no-sensitivity", *args]
    return subprocess.Popen(command, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


SLURM_OPTIONS = ("--executor", "slurm", "--slurm-time-min", "30", "--slurm-cpus-per-task", "1",
                 "--slurm-gpus-per-node", "0", "--slurm-mem-gb", "2", "--slurm-array-parallelism", "2")


@pytest.mark.slurm
def test_a_smoke_claim_through_real_slurm_survives_a_cancelled_job_and_equals_a_run_here(slurm, tmp_path):
    bench = manifest(tmp_path)
    here = suite_run(bench, tmp_path / "here" / "results")
    assert here.wait(timeout=600) == 0, here.stdout.read()

    results = tmp_path / "cluster" / "results"
    submission = suite_run(bench, results, *SLURM_OPTIONS, env=slurm)
    checkpoints = tmp_path / "cluster" / "checkpoints" / "maml-sinusoid" / "smoke" / "maml"
    deadline = time.time() + 300
    while not list(checkpoints.glob("seed0/*/latest.pt")):  # maml is under way: cancel its job
        assert time.time() < deadline and submission.poll() is None, "maml never checkpointed"
        time.sleep(0.5)
    queue = subprocess.run(["squeue", "-h", "-r", "-o", "%i %j"], env={**os.environ, **slurm}, capture_output=True,
                           text=True).stdout.split()
    jobs = queue[::2]
    assert jobs, "no job in the queue"
    # the array's tasks are submitted in the claim's run order: maml first
    subprocess.run(["scancel", sorted(jobs)[0]], env={**os.environ, **slurm}, check=True)
    output = submission.communicate(timeout=600)[0]
    assert submission.returncode != 0, output
    assert "1 of 2 jobs failed (the others finished)" in output
    assert "run 'maml'" in output and "left the queue without a result" in output
    assert (results / "maml-sinusoid" / "smoke" / "pretrained" / "seed0" / "results.json").is_file()
    assert not (results / "maml-sinusoid" / "smoke" / "maml" / "seed0" / "results.json").exists()

    again = suite_run(bench, results, *SLURM_OPTIONS, env=slurm)
    output = again.communicate(timeout=600)[0]
    assert again.returncode == 0, output
    assert "submitted 1 run(s) as slurm job(s)" in output
    record = json.loads((results / "maml-sinusoid" / "smoke" / "maml" / "seed0" / "results.json").read_text())
    assert record["training"]["resumed_at"], "the resubmitted job trained from scratch instead of resuming"
    for run in ("maml", "pretrained"):
        ours, theirs = (json.loads((root / "maml-sinusoid" / "smoke" / run / "seed0" / "results.json").read_text())
                        for root in (results, tmp_path / "here" / "results"))
        assert ours["episodes"] == theirs["episodes"], run
        assert ours["training"]["curve"] == theirs["training"]["curve"], run

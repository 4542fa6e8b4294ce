"""Runs on a cluster: the runs of `suite run` as one submitit job array (Slurm; or submitit's local and debug
executors, which take the same path on one machine), each job training one run with the resumable runner (or one
training and the runs that share it: suite.protocol.manifest.shared_trainings), and the submitting process waiting
for them with their states.

- A job is a submitit Checkpointable: when Slurm preempts it or its time runs out, submitit requeues it with the
  same arguments, and the runner resumes from the run's latest.pt. A job cancelled outright (`scancel`) leaves the
  queue without a result; the next `suite run` submits it again and it resumes the same way.
- Results are written by the job itself through the runner's atomic writes, beside everything else; the submitting
  process then writes metrics and the report as for a run on this machine. DVC runs on the submit host only (its
  repository lock does not reach compute nodes: iterative/dvc #7419), with the executor passed to its claim stages
  by SUITE_EXECUTOR.
- Rerunning submits only the runs with no result yet; a failed job names its run, its log and its error, and the
  others finish.

The Slurm parameters come from the manifest's `executor.slurm` section, or from `--slurm-*` options, never from the
code (suite.protocol.manifest.SLURM_SCHEMA).
"""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

from suite.protocol import RunConfig, shared_trainings
from suite.training.layout import RunError, existing_result

EXECUTORS = ("inline", "local", "debug", "slurm")  # inline: this process (or --jobs workers), no submitit
POLL_SECONDS = 5.0


def describe(group: list[RunConfig]) -> str:
    from suite.training.parallel import describe_group  # torch is imported with it: not for `suite --help`

    return describe_group(group)


def _train_one(group: list[RunConfig], root: str, device: str, code: dict, data_dir: str, overwrite: bool,
               path: str):
    from suite.training.parallel import train_and_evaluate_group
    from suite.training.provenance import resolve_device

    train_and_evaluate_group(group, Path(root), resolve_device(device), code, Path(data_dir), overwrite, None, path)
    return describe(group)


def _job():
    """The job's callable (submitit is imported only when a cluster executor is asked for)."""
    import submitit

    class TrainRun(submitit.helpers.Checkpointable):
        """One training and its runs: requeued as it is (its arguments) when preempted or out of time; the runner
        resumes it from its latest.pt."""

        def __call__(self, *args):
            return _train_one(*args)

    return TrainRun()


def executor_for(name: str, folder: Path, slurm: dict):
    import submitit

    executor = submitit.AutoExecutor(folder=folder / "%j", cluster=name)
    if name == "slurm":
        executor.update_parameters(
            timeout_min=slurm["time_min"], cpus_per_task=slurm["cpus_per_task"], mem_gb=slurm["mem_gb"],
            gpus_per_node=slurm["gpus_per_node"], slurm_array_parallelism=slurm["array_parallelism"],
            name="suite", **({"slurm_partition": slurm["partition"]} if slurm.get("partition") else {}))
    elif name == "local":
        executor.update_parameters(timeout_min=slurm["time_min"] if slurm else 24 * 60)
    return executor


def _slurm_queue(job_ids: list[str]) -> dict[str, str] | None:
    """{job id: state} of these jobs still in Slurm's queue (squeue), None when squeue cannot say. submitit reads
    states from sacct, which a cluster without accounting storage does not answer: a job gone from the queue without
    a result is then known by its absence here."""
    ids = sorted({j.split("_")[0] for j in job_ids})
    try:
        out = subprocess.run(["squeue", "-h", "-r", "-o", "%i %T", "-j", ",".join(ids)], capture_output=True,
                             text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return {} if "Invalid job id" in out.stderr else None
    return dict(line.split()[:2] for line in out.stdout.splitlines() if line.strip())


def _error_line(exception: BaseException) -> str:
    """The error a failed job raised: the last line of the traceback submitit's FailedJobError carries between
    its dashed lines (else the exception's own last line)."""
    text = str(exception)
    parts = text.split("-" * 22)
    lines = [line for line in (parts[1] if len(parts) > 2 else text).splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(exception).__name__


def _failure(group: list[RunConfig], job, why: str) -> str:
    return f"{describe(group)}: job {job.job_id} {why} (log: {job.paths.stderr})"


def submit_and_wait(configs: list[RunConfig], root: Path, device: str, code: dict, data_dir: Path, executor: str,
                    slurm: dict | None, overwrite: bool = False, path: str = "auto", progress: bool = True,
                    poll: float = POLL_SECONDS, log=print) -> list[str]:
    """Submit the runs that have no result (all, with `overwrite`) as one job array, a job per training (runs that
    share one are a job), wait for them, and raise a RunError naming every failed job once the others are done.
    Returns the job ids."""
    from tqdm import tqdm

    missing = shared_trainings([cfg for cfg in configs if overwrite or existing_result(root, cfg) is None])
    if not missing:
        return []
    folder = root.resolve().parent / "jobs"
    array = executor_for(executor, folder, slurm or {})
    jobs = array.map_array(_job(), missing, *[[arg] * len(missing) for arg in (
        str(root.resolve()), device, code, str(Path(data_dir).resolve()), overwrite, path)])
    log(f"submitted {sum(map(len, missing))} run(s) as {executor} job(s) {', '.join(j.job_id for j in jobs)}; "
        f"logs in {folder}")
    failed, finished, gone = {}, set(), {}
    bar = tqdm(total=len(jobs), desc="jobs", unit="job", disable=not progress, dynamic_ncols=True)
    while len(finished) < len(jobs):
        queue = _slurm_queue([j.job_id for j in jobs]) if executor == "slurm" else None
        running = pending = 0
        for i, (group, job) in enumerate(zip(missing, jobs)):
            if i in finished:
                continue
            if job.done():
                finished.add(i)
                bar.update(1)
                exception = job.exception()
                if exception is not None:
                    failed[i] = _failure(group, job, f"failed: {_error_line(exception)}")
            elif queue is not None and job.job_id not in queue:
                # gone from the queue without a result, twice in a row (a shared file system may show the result
                # late): cancelled, or lost with its node
                gone[i] = gone.get(i, 0) + 1
                if gone[i] >= 2 and not job.done(force_check=True):
                    finished.add(i)
                    bar.update(1)
                    failed[i] = _failure(group, job, "left the queue without a result (cancelled?); `suite run` "
                                                   "again submits it, and it resumes from its checkpoint")
            elif (queue or {}).get(job.job_id, job.state).upper().startswith("PENDING"):
                pending += 1
            else:
                running += 1
        bar.set_postfix(pending=pending, running=running, done=len(finished) - len(failed), failed=len(failed),
                        refresh=False)
        if len(finished) < len(jobs):
            time.sleep(poll)
    bar.close()
    if failed:
        raise RunError(f"{len(failed)} of {len(jobs)} jobs failed (the others finished):\n"
                       + "\n".join(failed[i] for i in sorted(failed)))
    return [j.job_id for j in jobs]

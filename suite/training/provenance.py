"""What a result records about where it came from: the checkout's commit, the package versions, the device."""
from __future__ import annotations

import platform
import subprocess
from pathlib import Path

import numpy as np
import torch

from suite.training.layout import RunError


def git_state(where: Path) -> dict:
    """Commit of the checkout at `where`, and whether its code (suite/, new files included, and pyproject.toml)
    differs from it."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=where, capture_output=True, text=True, timeout=30)

    try:
        head = git("rev-parse", "HEAD")
    except FileNotFoundError:  # no git on this machine
        return {"git_commit": None, "git_dirty": None}
    if head.returncode:
        return {"git_commit": None, "git_dirty": None}
    status = git("status", "--porcelain", "--untracked-files=all", "--", "suite", "pyproject.toml")
    return {"git_commit": head.stdout.strip(), "git_dirty": None if status.returncode else bool(status.stdout.strip())}


def versions() -> dict:
    return {"suite": _suite_version(), "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__}


def _suite_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("suite")
    except PackageNotFoundError:
        return "unknown"


def resolve_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise RunError(f"--device {spec}: no CUDA device is available here (use --device cpu or auto)")
        index = spec.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise RunError(f"--device {spec}: there are {torch.cuda.device_count()} CUDA devices (cuda:0 ...)")
        return torch.device(spec)
    raise RunError(f"--device {spec!r}: expected auto, cpu, cuda or cuda:N")


def device_name(device: torch.device) -> str:
    """The accelerator's name, or the CPU's model and the vector instructions torch's kernels use on it (e.g.
    "AMD EPYC, AVX2"): two x86_64 machines' paces differ about twofold with them, so a run's segments and a plan's
    costs say which CPU they were measured on."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = next((line.partition(":")[2].strip() for line in _cpuinfo().splitlines()
                  if line.startswith("model name")), "") or platform.processor() or platform.machine()
    capability = torch.backends.cpu.get_cpu_capability()
    return f"{model}, {capability}" if capability else model


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux
        return ""

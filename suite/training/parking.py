"""Parked checkpoints and kept models: a training in progress, or a finished one, carried to another machine through
git.

A paper training can outlive the machine it runs on (a lent GPU for ten minutes, a session that ends). Its
checkpoints live in checkpoints/, which git ignores: large, and rewritten every few minutes. `suite park` copies
the latest.pt of each training in progress (each progress.json under results/) to the same relative path under
checkpoints-in-progress/, which git tracks; committed, it travels with the repository. A training that selects its
model on validation (suite.training.loop) parks its candidates/ with it: the snapshots its selection may still pick
are part of its state, as the scores in latest.pt's curve are. On any machine, the runner resumes a training whose
latest.pt is not in checkpoints/ from its parked copy, and deletes the copy once the run's results.json is written,
so the commit that lands the result also removes the binary.

A finished paper training is kept the same way: when its results.json is written, the runner copies its final.pt
to trained-models/ (git tracks it; a Conv4 is about 0.5 MiB, with Reptile's carried Adam moments 1.3 MiB), and
restores it into checkpoints/ where that has none. An evaluation-only sensitivity variant declared after the run
landed is then measured on the run's own trained model on any clone, instead of retraining it.

    checkpoints/<claim>/<profile>/<run>/seed<N>/<training identity>/latest.pt              this machine's
    checkpoints-in-progress/<claim>/<profile>/<run>/seed<N>/<training identity>/latest.pt  parked, in git
        (and candidates/<iteration>.pt beside it, of a training that selects on validation)
    trained-models/<claim>/paper/<run>/seed<N>/<training identity>/final.pt                kept, in git

A run whose training identity another run already has (a twin: of its claim, as suite.protocol.manifest.
shared_trainings groups them, or of another claim: omniglot-maml's n5-k5 and freeze-layer-omniglot's n5-k5 are one
training, as the identity is a hash of the computation, whichever claim asks for it) copies that run's final.pt, from
either place, instead of training (restore_twin); it keeps no copy of its own.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from suite.io import atomic_write_bytes
from suite.training.layout import CHECKPOINTS, checkpoint_base

PARKED = "checkpoints-in-progress"
KEPT = "trained-models"
LATEST, FINAL = "latest.pt", "final.pt"
CANDIDATES = "candidates"  # a validating training's kept snapshots, <iteration>.pt (suite.training.loop)


def _twin(ckpts: Path, folder: str) -> Path:
    base = checkpoint_base(ckpts)
    return base / folder / ckpts.relative_to(base / CHECKPOINTS)


def parked_dir(ckpts: Path) -> Path:
    """The parked twin of a checkpoint folder (suite.training.layout.checkpoint_dir)."""
    return _twin(ckpts, PARKED)


def kept_dir(ckpts: Path) -> Path:
    """The kept twin of a checkpoint folder, for its final.pt."""
    return _twin(ckpts, KEPT)


def has_finished(ckpts: Path) -> bool:
    """A training finished in this folder, here or kept."""
    return (ckpts / FINAL).is_file() or (kept_dir(ckpts) / FINAL).is_file()


def keep_trained(ckpts: Path) -> Path:
    """After a paper run's results are written: its final.pt to its kept twin; the copy's path."""
    dest = kept_dir(ckpts) / FINAL
    atomic_write_bytes(dest, (ckpts / FINAL).read_bytes())
    return dest


def restore_trained(ckpts: Path) -> bool:
    """Before a run is trained or evaluated: copy the kept final.pt into a checkpoint folder that has none (the
    training finished, on another machine). True when it did."""
    source = kept_dir(ckpts) / FINAL
    if (ckpts / FINAL).exists() or not source.is_file():
        return False
    atomic_write_bytes(ckpts / FINAL, source.read_bytes())
    return True


TRAINED_BY = "trained-by"  # in a checkpoint folder whose final.pt a twin trained: that run's name


def _twins(ckpts: Path) -> list[Path]:
    """The checkpoint folders of the same training identity under other runs (same profile and seed), the claim's
    own first, then other claims', whatever holds them: this machine's checkpoints/, a parked latest.pt or a kept
    final.pt. The same identity is the same computation (suite.training.identity.training_identity)."""
    base = checkpoint_base(ckpts)
    claim, profile, run, seed, identity = ckpts.relative_to(base / CHECKPOINTS).parts
    found = {(p.parts[-5], p.parts[-3]) for folder in (CHECKPOINTS, PARKED, KEPT)
             for p in (base / folder).glob(f"*/{profile}/*/{seed}/{identity}")} - {(claim, run)}
    return [base / CHECKPOINTS / c / profile / r / seed / identity
            for c, r in sorted(found, key=lambda cr: (cr[0] != claim, cr))]


def twin_name(twin: Path, ckpts: Path) -> str:
    """A twin as results name it: its run, or `claim/run` when it is another claim's."""
    claim, run = twin.parts[-5], twin.parts[-3]
    return run if claim == ckpts.parts[-5] else f"{claim}/{run}"


def restore_twin(ckpts: Path) -> str | None:
    """Before a run is trained or evaluated: when its checkpoint folder has no final.pt and a twin's own training has
    finished (here or kept; not a copy it took from another), copy that final.pt in, marked with the twin's name
    (trained_by); the twin's name, or None. A training of its own under way (here or parked) finishes instead: its
    process may hold this folder."""
    if (ckpts / FINAL).exists() or has_started(ckpts):
        return None
    for twin in _twins(ckpts):
        if trained_by(twin):
            continue
        source = next((f for f in (twin / FINAL, kept_dir(twin) / FINAL) if f.is_file()), None)
        if source is not None:
            name = twin_name(twin, ckpts)
            atomic_write_bytes(ckpts / TRAINED_BY, f"{name}\n".encode())  # first: a final.pt never passes for
            atomic_write_bytes(ckpts / FINAL, source.read_bytes())  # the run's own training
            return name
    return None


def trained_by(ckpts: Path) -> str | None:
    """The run whose training the final.pt in this folder is (restore_twin; `claim/run` when another claim's),
    None when it is the run's own."""
    mark = ckpts / TRAINED_BY
    return mark.read_text().strip() if mark.is_file() and (ckpts / FINAL).is_file() else None


def twin_under_way(ckpts: Path) -> str | None:
    """The run whose training of this identity is under way (here or parked; `claim/run` when another claim's)
    when this folder has neither a training of its own nor a finished one: that training is this run's too, and it
    waits for it."""
    if (ckpts / FINAL).exists() or has_started(ckpts):
        return None
    return next((twin_name(twin, ckpts) for twin in _twins(ckpts) if has_started(twin)), None)


def has_started(ckpts: Path) -> bool:
    """A training under way in this folder, here or parked."""
    return (ckpts / LATEST).is_file() or (parked_dir(ckpts) / LATEST).is_file()


def unpark(ckpts: Path) -> bool:
    """Before training: copy the parked latest.pt, with its candidates/, into a checkpoint folder that has neither
    latest.pt nor final.pt (this machine's own checkpoint, when there is one, is the newer). True when it did."""
    source = parked_dir(ckpts)
    if (ckpts / LATEST).exists() or (ckpts / FINAL).exists() or not (source / LATEST).is_file():
        return False
    _mirror_candidates(source, ckpts)  # first: a latest.pt here is what says the folder is whole
    atomic_write_bytes(ckpts / LATEST, (source / LATEST).read_bytes())
    return True


def discard_parked(ckpts: Path):
    """After the run's results are written: its parked copy, and the folders it leaves empty."""
    folder = parked_dir(ckpts)
    shutil.rmtree(folder, ignore_errors=True)
    base = checkpoint_base(ckpts)
    for parent in folder.parents:
        if parent == base:
            break
        try:
            parent.rmdir()  # only when empty
        except OSError:
            break


def checkpoint_folder(base: Path, progress: dict) -> Path:
    """The checkpoint folder a progress.json names (relative to the repository: checkpoints/...)."""
    return base / progress["checkpoint"]


def where_resumable(base: Path, progress: dict) -> str | None:
    """'here' when this machine holds the training's latest.pt, 'parked' when only its parked copy is here, None
    when neither is: the training cannot resume, whatever its progress.json says."""
    folder = checkpoint_folder(base, progress)
    if (folder / LATEST).is_file():
        return "here"
    return "parked" if (parked_dir(folder) / LATEST).is_file() else None


def _mirror_candidates(source: Path, dest: Path):
    """Make dest/candidates/ hold exactly source/candidates/'s snapshots (none when source has none)."""
    have = {f.name: f for f in (source / CANDIDATES).glob("*.pt")}
    for stale in (dest / CANDIDATES).glob("*.pt"):
        if stale.name not in have:
            stale.unlink()
    for name, f in have.items():
        atomic_write_bytes(dest / CANDIDATES / name, f.read_bytes())
    if (dest / CANDIDATES).is_dir() and not have:
        (dest / CANDIDATES).rmdir()


def park(base: Path, progress: dict) -> Path | None:
    """Copy a training's latest.pt, and its candidates/ if it has any, to its parked twin (replacing an older copy);
    the parked latest.pt's path, or None when this machine has no latest.pt to park."""
    folder = checkpoint_folder(base, progress)
    if not (folder / LATEST).is_file():
        return None
    dest = parked_dir(folder)
    _mirror_candidates(folder, dest)
    atomic_write_bytes(dest / LATEST, (folder / LATEST).read_bytes())
    return dest / LATEST

"""A run's identity: what determines its numbers. Its resolved configuration (the config hash) plus the declared
numerics version of every component it runs — the algorithm, the task family, the model kind, the shared inner
loops, the training loop and the evaluation — never the bytes of source files. So a comment, a rename or a moved
file keeps every checkpoint and result, and a bumped version retrains exactly the runs that use it (and, through
numerics.yaml, reruns exactly those claims under `dvc repro`). tests/test_goldens.py guards the versions: a change
that alters a smoke number without bumping one fails there.

Results written before versions were declared carry none; they were made by version 1 of everything, the numerics
the goldens pinned when versions were introduced.
"""
from __future__ import annotations

from suite.protocol.components import algorithms, families, model_kinds
from suite.protocol.fields import measures_resources
from suite.protocol.manifest import RunConfig, config_hash

# Bump when a change to the training loop (suite/training/loop.py: task seeding, curve points) alters numbers.
TRAINING_LOOP_VERSION = 1


def _shared_versions() -> dict[str, int]:
    # imported here: the evaluation and inner loops are torch code; their versions are plain module constants
    from suite.algorithms import inner
    from suite.training import evaluate

    return {"inner-loops": inner.NUMERICS_VERSION, "evaluation": evaluate.NUMERICS_VERSION}


def numerics(cfg: RunConfig) -> dict[str, int]:
    """The numerics versions of everything a run computes with, by component name."""
    versions = {f"algorithm/{cfg.algorithm}": algorithms()[cfg.algorithm].NUMERICS_VERSION,
                f"task/{cfg.task['family']}": families()[cfg.task["family"]].NUMERICS_VERSION,
                f"model/{cfg.model['kind']}": model_kinds()[cfg.model["kind"]].NUMERICS_VERSION,
                "training-loop": TRAINING_LOOP_VERSION, **_shared_versions()}
    if measures_resources(cfg.evaluation):  # measured, not evaluated on test tasks
        from suite.training import resources

        del versions["evaluation"]
        versions["resources"] = resources.NUMERICS_VERSION
    return versions


UNVERSIONED = 1  # what a result without recorded versions was made by (see the module docstring)


def recorded_numerics(record: dict, cfg: RunConfig) -> dict[str, int]:
    """The numerics versions a result records; version 1 of each component for results older than versions."""
    return record.get("numerics") or {name: UNVERSIONED for name in numerics(cfg)}


def is_current(record: dict, cfg: RunConfig) -> bool:
    """Whether a result was made by exactly this configuration and these numerics versions."""
    return record.get("config_hash") == cfg.hash and recorded_numerics(record, cfg) == numerics(cfg)


def training_identity(cfg: RunConfig, data: dict | None = None, path: str | None = None) -> str:
    """The hash naming a run's checkpoint folder: its training configuration, the numerics versions training uses
    and the path that computes it (suite.training.paths; a run resumes on the path it began with). A learning curve on test tasks during training makes the evaluation settings it reads (and the
    evaluation's version) part of it too; so does `data`, what the tasks are drawn from where that can differ
    (Mini-ImageNet's format and arrays, or its generated stand-in)."""
    spec = cfg.training_spec
    versions = {k: v for k, v in numerics(cfg).items() if k != "evaluation"}
    if "evaluation" in spec:  # a learning curve during training: the evaluation's version decides it too
        versions["evaluation"] = numerics(cfg)["evaluation"]
    if data is not None:
        spec["data"] = data
    if path is not None:
        spec["path"] = path
    return config_hash({**spec, "numerics": versions})


def claim_numerics(claim) -> dict[str, int]:
    """The numerics versions of every component any run of the claim uses, in any profile (numerics.yaml's entry,
    which its DVC stage depends on)."""
    used = {}
    for profile in claim.profiles:
        for cfg in claim.run_configs(profile):
            used.update(numerics(cfg))
    return dict(sorted(used.items()))

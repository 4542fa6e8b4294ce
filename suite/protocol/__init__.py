"""The protocol layer: the manifest (benchmarks.yaml), its field declarations and validation, profiles and config
hashes. It imports no torch, so listing, showing and judging claims works without it."""
from suite.protocol.manifest import (PAPER, Claim, Manifest, RunConfig, config_hash, load_manifest,
                                     shared_trainings)
from suite.protocol.schema import Field, ManifestError

__all__ = ["PAPER", "Claim", "Field", "Manifest", "ManifestError", "RunConfig", "config_hash", "load_manifest",
           "shared_trainings"]

"""The training layer: the loop, checkpoints and their lock, evaluation, provenance, parallel workers, bench."""

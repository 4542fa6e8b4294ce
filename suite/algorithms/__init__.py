"""Algorithms, one module each (suite/protocol/components.py's Algorithm): its hyperparameters (ARGS), its checks,
and a Learner whose step(tasks, iteration, generator) performs one meta-iteration. `base` and `inner` hold what
they share: the Learner base class, the outer optimisers, the functional inner loops."""
SUPPORT = ("base", "inner", "svgd")

"""Algorithms, one module each (suite/protocol/components.py's Algorithm): its hyperparameters (ARGS), its checks,
and a Learner whose step(tasks, iteration, generator) performs one meta-iteration. `base` and `inner` hold what
they share: the Learner base class, the outer optimisers, the functional inner loops; `svgd` Stein variational
gradient descent (Bayesian MAML's); `policy_gradient` returns, baselines, advantages and TRPO (MAML for RL)."""
SUPPORT = ("base", "inner", "svgd", "policy_gradient")

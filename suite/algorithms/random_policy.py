"""The randomly initialised policy of MAML's reinforcement-learning comparison (arXiv 1703.03400 §5.3, Figure 4:
"a policy trained from randomly initialized weights"; cbfinn/maml_rl test_maml_point.py l.56-60 builds a fresh
GaussianMLPPolicy for it, tanh hidden layers by default): no meta-training; at test time it is adapted as MAML's
policy is (suite.algorithms.maml_trpo.PolicyEvaluation), from its initialisation.

    θ = the model's initialisation from the run's seed, log std = init_log_std
    (no meta-iteration)
"""
from __future__ import annotations

from suite.algorithms import maml_trpo
from suite.algorithms.base import Learner as BaseLearner
from suite.algorithms.base import check_evaluation, extra_inputs, finetune_steps_limit  # noqa: F401 (the usual answers)
from suite.algorithms.maml_trpo import carries_inner_state, initial_params, paths  # noqa: F401 (a policy's)
from suite.algorithms.pretrained_policy import hessian_vector_products, second_order  # noqa: F401
from suite.protocol.schema import Field, ManifestError

# Bump when a change alters what it computes (then regenerate tests/goldens/).
NUMERICS_VERSION = 1
LOGGED_LOSS = "none: it is not trained"

ARGS = {
    "iterations": Field("nonnegative_int", doc="meta-iterations: 0, a random initialisation is not trained"),
    # what its test-time policy-gradient steps use (suite.algorithms.maml_trpo.advantages)
    **{k: maml_trpo.ARGS[k] for k in ("discount", "gae_lambda", "normalize_advantages", "baseline_reg",
                                      "init_log_std")},
}


def check(hp: dict, task: dict, family, where: str):
    if hp["iterations"] != 0:
        raise ManifestError(f"{where}.iterations: a random initialisation is not trained, so 0 (got "
                            f"{hp['iterations']}); a policy trained on all tasks is the pretrained_policy algorithm")


def task_shape(hp: dict) -> tuple[int, int, int]:
    return 1, 1, 1  # it samples no training task


class Learner(BaseLearner):
    def __init__(self, model, params, hp, path):
        super().__init__(model, params, hp, path)
        self.schedule = maml_trpo.PolicyEvaluation(hp)

    def step(self, tasks, iteration, generator):
        raise AssertionError("a random initialisation takes no meta-iteration (check() requires iterations: 0)")

"""The pretrained policy of MAML's reinforcement-learning comparison (arXiv 1703.03400 §5.3, Figure 4: "pretraining
one policy on all of the tasks and then fine-tuning"; cbfinn/maml_rl trains it as MAMLTRPO with use_maml=False:
rllab's FirstOrderOptimizer, one full-batch Adam step a meta-iteration on the mean REINFORCE loss of the unadapted
policy's trajectories, maml_npo.py:31-36,126-128).

    sample a batch of tasks T_i
    for each T_i:  D_i = `shots` trajectories of π_θ;  A_i their advantages (a linear baseline fitted on D_i)
    θ ← Adam(θ, ∇θ mean_i L_REINFORCE(θ; D_i, A_i))

At test time it is adapted as MAML's policy is (suite.algorithms.maml_trpo.PolicyEvaluation).
"""
from __future__ import annotations

from suite.algorithms import maml_trpo
from suite.algorithms import policy_gradient as pg
from suite.algorithms.base import Learner as BaseLearner, make_torch_optimizer
from suite.algorithms.base import check_evaluation, extra_inputs, finetune_steps_limit  # noqa: F401 (the usual answers)
from suite.algorithms.maml_trpo import carries_inner_state, initial_params, paths  # noqa: F401 (a policy's)
from suite.algorithms.maml import ARGS as MAML_ARGS
from suite.lazy import lazy

torch = lazy("torch")

# Bump when a change alters what it computes (then regenerate tests/goldens/).
NUMERICS_VERSION = 2  # 2: the logged loss is minus the mean return (the normalised REINFORCE loss is ~0)
LOGGED_LOSS = "minus the mean return of the policy's trajectories over the meta-batch (before its update)"

ARGS = {
    **{k: maml_trpo.ARGS[k] for k in ("iterations", "meta_batch", "shots", "discount", "gae_lambda",
                                      "normalize_advantages", "baseline_reg", "init_log_std")},
    "meta_optimizer": MAML_ARGS["meta_optimizer"],
}


def check(hp: dict, task: dict, family, where: str):
    pass


def task_shape(hp: dict) -> tuple[int, int, int]:
    return hp["meta_batch"], hp["shots"], 1


def second_order(hp: dict) -> bool:
    return False


def hessian_vector_products(hp: dict) -> bool:
    return False


class Learner(BaseLearner):
    def __init__(self, model, params, hp, path):
        super().__init__(model, params, hp, path)
        self.optimizer = make_torch_optimizer(self.params, hp["meta_optimizer"])
        self.schedule = maml_trpo.PolicyEvaluation(hp)

    def step(self, tasks, iteration, generator):
        data = maml_trpo.rollout(self.model, [self.params] * len(tasks), tasks, tasks.shots, generator)
        losses = []
        for i in range(len(tasks)):
            obs, actions, rewards, mask = maml_trpo.split(data, i, tasks.shots)
            adv = maml_trpo.advantages(obs, rewards, mask, self.hp)
            losses.append(pg.reinforce_loss(maml_trpo.log_prob(self.model, self.params, obs, actions), adv, mask))
        loss = torch.stack(losses).mean()
        grads = torch.autograd.grad(loss, list(self.params.values()))
        self.apply_gradients(dict(zip(self.params, grads)))
        return -maml_trpo.trajectory_returns(data[2], data[3], len(tasks)).mean().item()

"""MAML for reinforcement learning (Finn, Abbeel & Levine 2017, arXiv 1703.03400 Algorithm 3, §5.3 and Appendix C;
cbfinn/maml_rl): a Gaussian policy adapted by vanilla policy-gradient steps, meta-trained by TRPO through them.

    sample a batch of tasks T_i
    for each T_i:  D_i   = `shots` trajectories of π_θ;  A_i their advantages (a linear baseline fitted on D_i)
                   θ'_i  = θ − α ∇θ L_REINFORCE(θ; D_i, A_i)               (inner_steps times, fresh D_i each)
                   D'_i  = `queries` trajectories of π_θ'_i;  A'_i their advantages
    θ ← TRPO: minimise mean_i L_surr(θ'_i(θ); D'_i, A'_i), with mean_i KL(π_θ'_i,old ‖ π_θ'_i(θ)) ≤ max_kl
        (conjugate gradient on Fisher-vector products of that KL, through θ'_i(θ), then a backtracking line search)

L_surr is the importance-weighted surrogate −mean_t π_new(a_t|s_t)/π_old(a_t|s_t)·A'_t (rllab's TRPO). The policy
is the model's MLP for the action's mean and a learned state-independent log std (rllab's GaussianMLPPolicy); a
policy with a context vector (suite.algorithms.context_vector) appends it to every observation and adapts it alone.
Tasks (suite.tasks.navigation2d.GoalBatch) are goals; trajectories are sampled from the iteration's generator.
suite.algorithms.policy_gradient has the returns, baseline, advantages, CG and line search.
"""
from __future__ import annotations

import math
from functools import partial

from suite.algorithms import policy_gradient as pg
from suite.algorithms.base import Learner as BaseLearner
from suite.algorithms.base import check_evaluation, extra_inputs, finetune_steps_limit  # noqa: F401 (the usual answers)
from suite.algorithms.maml import ARGS as MAML_ARGS
from suite.algorithms.maml import hessian_vector_products, second_order, task_shape  # noqa: F401
from suite.lazy import lazy
from suite.protocol.schema import Field

torch = lazy("torch")

# Bump when a change alters what it computes (then regenerate tests/goldens/).
NUMERICS_VERSION = 2  # 2: the logged loss is minus the adapted policies' mean return (the surrogate is ~0)
LOGGED_LOSS = "minus the mean return of the adapted policies' trajectories (the meta-update's data, before it)"
LOG_STD, CONTEXT = "log_std", "context"

ARGS = {
    **{k: MAML_ARGS[k] for k in ("iterations", "meta_batch", "inner_steps")},
    "shots": Field("positive_int", doc="trajectories a task's inner step samples (fast_batch_size)"),
    "queries": Field("positive_int", doc="trajectories of each adapted policy for the meta-update"),
    "inner_lr": Field("positive_float", doc="α, the inner policy-gradient step size"),
    "discount": Field("positive_float", doc="γ of the returns"),
    "gae_lambda": Field("float", doc="λ of generalised advantage estimation (1: returns minus the baseline)"),
    "normalize_advantages": Field("bool", doc="centre and scale each task's advantages (rllab's center_adv)"),
    "baseline_reg": Field("positive_float", doc="ridge coefficient of the linear baseline's fit (rllab: 1e-5)"),
    "init_log_std": Field("float", doc="the policy's log std at initialisation (rllab: log 1 = 0)"),
    "max_kl": Field("positive_float", doc="TRPO's bound on the mean KL of the meta-update (step_size)"),
    "cg_iterations": Field("positive_int", doc="conjugate-gradient iterations of TRPO's direction"),
    "cg_damping": Field("float", doc="λ added to the Fisher-vector products (F + λI)"),
    "backtrack_ratio": Field("positive_float", doc="the line search's factor on the step per backtrack"),
    "max_backtracks": Field("positive_int", doc="the line search's backtracks at most"),
    "finite_difference_hvp": Field({
        "base_eps": Field("positive_float", doc="ε·‖θ‖: the step is base_eps / ‖θ‖ along the vector"),
    }, required=False, doc="TRPO's Fisher-vector products as rllab's FiniteDifferenceHvp computes them, the "
                           "symmetric difference (∇KL(θ + εv) − ∇KL(θ − εv)) / 2ε of the KL's gradient, the adapted "
                           "policies rebuilt at each point (cbfinn/maml_rl's ConjugateGradientOptimizer default; "
                           "its FiniteDifferenceHvp(num_slices) passes 1 as base_eps); without it, exact products "
                           "(the KL's double backward)"),
}


def check(hp: dict, task: dict, family, where: str):
    pass


def carries_inner_state(hp: dict) -> bool:
    return False


def paths(hp: dict) -> tuple[str, ...]:
    """The loop: trajectories are batched inside a task; the tasks' inner steps are differentiated one by one."""
    return ("loop",)


def initial_params(model, seed: int, hp: dict, device) -> dict:
    params = model.init_params(seed, device=device)
    out_dim = params[list(params)[-1]].shape[0]  # the last layer's bias: the action dimension
    params[LOG_STD] = torch.full((out_dim,), float(hp["init_log_std"]), device=device)
    return params


def weights(params: dict) -> dict:
    """The MLP's parameters: all but the log std and the context vector."""
    return {k: v for k, v in params.items() if k not in (LOG_STD, CONTEXT)}


def adapted_names(params: dict) -> list[str]:
    """The parameters a policy-gradient step adapts: the context vector alone where the policy has one (cbfinn/maml_rl
    sens_minimal_gauss_mlp_policy.py's mask_units: its inner update and its test-time parameters are the vector's),
    else every one, the log std included (MAMLGaussianMLPPolicy's)."""
    return [CONTEXT] if CONTEXT in params else list(params)


def mean_action(model, params: dict, obs):
    """The MLP's output on the observations, the policy's context vector appended to each where it has one."""
    if CONTEXT in params:
        obs = torch.cat([obs, params[CONTEXT].expand(*obs.shape[:-1], params[CONTEXT].shape[-1])], -1)
    return model.forward(weights(params), obs)


def distribution(model, params: dict, obs):
    """π(· | obs): a diagonal Gaussian, mean the MLP's output and std exp(log_std). Not validated: a line-search
    trial far along a bad direction may give NaN parameters, whose NaN loss the search rejects (as rllab's does)."""
    mean = mean_action(model, params, obs)
    return torch.distributions.Normal(mean, params[LOG_STD].exp().expand_as(mean), validate_args=False)


def log_prob(model, params: dict, obs, actions):
    return distribution(model, params, obs).log_prob(actions).sum(-1)


def rollout(model, per_task: list[dict], batch, trajectories: int, generator):
    """Every task's `trajectories` trajectories of its own policy (per_task[i]), all at once, without gradients:
    (observations [T, n·traj, 2], actions, rewards [T, n·traj], mask) in [task, trajectory] order."""
    env = batch.environment(trajectories)
    with torch.no_grad():
        stacked = {k: torch.stack([p[k].detach() for p in per_task]) for k in per_task[0]}

        def act(obs, t):
            grouped = obs.to(stacked[LOG_STD].dtype).view(len(per_task), trajectories, -1)
            mean = torch.func.vmap(partial(mean_action, model))(stacked, grouped)
            noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype).to(mean.device)
            return (mean + stacked[LOG_STD].exp().unsqueeze(1) * noise).flatten(0, 1)

        obs, actions, rewards, mask = env.rollout(act)
    dtype = stacked[LOG_STD].dtype
    return obs.to(dtype), actions.to(dtype), rewards.to(dtype), mask.to(dtype)


def advantages(obs, rewards, mask, hp: dict):
    """One task's advantages [T, traj]: GAE on a linear baseline fitted to its own trajectories' returns."""
    returns = pg.discounted_returns(rewards, mask, hp["discount"])
    weights_ = pg.fit_linear_baseline(obs, mask, returns, hp["baseline_reg"])
    values = pg.baseline_values(weights_, obs, mask)
    out = pg.gae(rewards, values, mask, hp["discount"], hp["gae_lambda"])
    return pg.normalise(out, mask) if hp["normalize_advantages"] else out


def split(data, i: int, trajectories: int):
    """Task i's share of a rollout's tensors (the [task, trajectory] order along dimension 1)."""
    return tuple(x[:, i * trajectories:(i + 1) * trajectories] for x in data)


def trajectory_returns(rewards, mask, n_tasks: int):
    """Each task's mean over its trajectories of their undiscounted return (the sum of rewards), [n_tasks]."""
    return (rewards * mask).sum(0).view(n_tasks, -1).mean(1)


def policy_gradient_step(model, params: dict, data, lr: float, hp: dict, create_graph: bool) -> dict:
    """θ − lr ∇θ L_REINFORCE(θ; data) for one task's (obs, actions, rewards, mask), on the adapted parameters
    (adapted_names); differentiable w.r.t. θ when create_graph (the meta-gradient goes through it, second order)."""
    obs, actions, rewards, mask = data
    adv = advantages(obs, rewards, mask, hp)
    loss = pg.reinforce_loss(log_prob(model, params, obs, actions), adv, mask)
    names = adapted_names(params)
    grads = dict(zip(names, torch.autograd.grad(loss, [params[k] for k in names], create_graph=create_graph)))
    return {k: p - lr * grads[k] if k in grads else p for k, p in params.items()}


def adapt(model, params: dict, batch, lrs: list[float], hp: dict, generator, create_graph: bool):
    """Each task's policy after len(lrs) policy-gradient steps from `params`, `batch.shots` fresh trajectories a
    step: (the policies, each step's rollout)."""
    per_task, rollouts = [params] * len(batch), []
    for lr in lrs:
        rollouts.append(rollout(model, per_task, batch, batch.shots, generator))
        per_task = adapt_on(model, per_task, rollouts[-1:], [lr], batch.shots, hp, create_graph)
    return per_task, rollouts


def adapt_on(model, per_task: list[dict], rollouts: list, lrs: list[float], trajectories: int, hp: dict,
             create_graph: bool) -> list[dict]:
    """The policies after one step per rollout on those fixed trajectories (TRPO's line search re-evaluates the
    adapted policies of a trial θ on the data sampled at the current one, as maml_rl's graph does)."""
    for data, lr in zip(rollouts, lrs):
        per_task = [policy_gradient_step(model, p, split(data, i, trajectories), lr, hp, create_graph)
                    for i, p in enumerate(per_task)]
    return per_task


def gaussian_kl(old, new):
    """KL(old ‖ new) of diagonal Gaussians, summed over the action's dimensions."""
    return torch.distributions.kl_divergence(old, new).sum(-1)


def flat(tensors) -> "torch.Tensor":
    return torch.cat([t.reshape(-1) for t in tensors])


class Learner(BaseLearner):
    def __init__(self, model, params, hp, path):
        super().__init__(model, params, hp, path)
        self.schedule = PolicyEvaluation(hp)

    def step(self, tasks, iteration, generator):
        hp, model, theta = self.hp, self.model, self.params
        names, lrs = list(theta), [hp["inner_lr"]] * hp["inner_steps"]
        adapted, rollouts = adapt(model, theta, tasks, lrs, hp, generator, create_graph=True)
        post = rollout(model, adapted, tasks, tasks.queries, generator)
        data = []  # each task's post-update trajectories, fixed advantages, and the old policy
        for i, p in enumerate(adapted):
            obs, actions, rewards, mask = split(post, i, tasks.queries)
            old = distribution(model, {k: v.detach() for k, v in p.items()}, obs)
            data.append((obs, actions, mask, advantages(obs, rewards, mask, hp).detach(), old,
                         old.log_prob(actions).sum(-1).detach()))

        def surrogate_and_kl(per_task):
            """(the mean over tasks of each one's mean surrogate, the KL's mean over every step of every task), as
            maml_npo.py:112-131 averages them"""
            losses, kls = [], []
            for p, (obs, actions, mask, adv, old, old_log_prob) in zip(per_task, data):
                new = distribution(model, p, obs)
                ratio = torch.exp(new.log_prob(actions).sum(-1) - old_log_prob)
                losses.append(-(ratio * adv * mask).sum() / mask.sum())
                kls.append((gaussian_kl(old, new) * mask).sum())
            return torch.stack(losses).mean(), torch.stack(kls).sum() / sum(d[2].sum() for d in data)

        leaves = [theta[k] for k in names]
        loss, kl = surrogate_and_kl(adapted)
        gradient = flat(torch.autograd.grad(loss, leaves, retain_graph=True))
        shapes = [theta[k].shape for k in names]

        def moved(step) -> dict:
            parts = torch.split(step, [math.prod(s) for s in shapes])
            return {k: (theta[k] + d.view(s)).detach().requires_grad_(True) for k, d, s in zip(names, parts, shapes)}

        if "finite_difference_hvp" in hp:  # rllab's FiniteDifferenceHvp (symmetric), as maml_rl's TRPO calls it
            eps = hp["finite_difference_hvp"]["base_eps"] / (flat(leaves).detach().norm() + 1e-8)

            def kl_gradient_at(step):
                p = moved(step)
                per_task = adapt_on(model, [p] * len(tasks), rollouts, lrs, tasks.shots, hp, True)
                return flat(torch.autograd.grad(surrogate_and_kl(per_task)[1], list(p.values())))

            def fisher_vector_product(v):
                return ((kl_gradient_at(eps * v) - kl_gradient_at(-eps * v)) / (2 * eps)).detach()
        else:
            kl_gradient = flat(torch.autograd.grad(kl, leaves, create_graph=True))  # 0 here; its Jacobian is F

            def fisher_vector_product(v):
                return flat(torch.autograd.grad(kl_gradient @ v, leaves, retain_graph=True)).detach()

        full_step = pg.trpo_direction(gradient, fisher_vector_product, hp["max_kl"], hp["cg_iterations"],
                                      hp["cg_damping"])

        def trial(step):
            per_task = adapt_on(model, [moved(step)] * len(tasks), rollouts, lrs, tasks.shots, hp, False)
            with torch.no_grad():
                return surrogate_and_kl(per_task)

        step, _ = pg.line_search(trial, full_step, hp["max_kl"], hp["backtrack_ratio"], hp["max_backtracks"])
        with torch.no_grad():
            for k, p in moved(step).items():
                theta[k].copy_(p)
        return -trajectory_returns(post[2], post[3], len(tasks)).mean().item()


class PolicyEvaluation:
    """Test-time adaptation as training adapts: policy-gradient steps, each from fresh trajectories; the returns of
    each step's trajectories are the evaluation's (suite.training.evaluate.evaluate_returns)."""

    def __init__(self, hp: dict):
        self.hp = hp

    def returns(self, model, params: dict, batch, steps: list[int], lrs: list[float], generator,
                examples: int = 0) -> tuple[dict, list[dict]]:
        """({step: each task's mean undiscounted return of `batch.shots` trajectories of its policy after that many
        steps}, the first `examples` tasks' goal and first trajectory after each step, as the positions it visits
        from the origin: MAML's Figure 5); lrs[s] is step s's size."""
        params = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        adapted, rollouts = adapt(model, params, batch, lrs[:steps[-1]], self.hp, generator, create_graph=False)
        rollouts.append(rollout(model, adapted, batch, batch.shots, generator))  # the last step's policies
        returns = {s: trajectory_returns(rollouts[s][2], rollouts[s][3], len(batch)) for s in steps}
        shown = []
        for i in range(min(examples, len(batch))):
            paths = {}
            for s in steps:
                obs, actions, _, mask = rollouts[s]
                j = i * batch.shots  # the task's first trajectory
                n = int(mask[:, j].sum())
                moved = (batch.settings["action_scale"] * actions[n - 1, j]).clamp(-batch.settings["action_bound"],
                                                                                  batch.settings["action_bound"])
                visited = torch.cat([obs[:n, j], (obs[n - 1, j] + moved).unsqueeze(0)])
                paths[str(s)] = visited.tolist()
            shown.append({"goal": batch.goals[i].tolist(), "paths": paths})
        return returns, shown

"""The context-vector baseline of MAML's reinforcement-learning comparison (Finn, Abbeel & Levine 2017, arXiv
1703.03400 Appendix C.2, Table 4): a policy whose MLP reads the observation with a learned context vector appended,
meta-trained as MAML's policy is (suite.algorithms.maml_trpo) except that its inner policy-gradient steps, and its
test-time steps, adapt the context vector alone.

    sample a batch of tasks T_i
    for each T_i:  D_i  = `shots` trajectories of π_(θ, c);  A_i their advantages
                   c'_i = c − α ∇c L_REINFORCE(θ, c; D_i, A_i)             (inner_steps times, fresh D_i each)
                   D'_i = `queries` trajectories of π_(θ, c'_i)
    (θ, c) ← TRPO on mean_i L_surr(θ, c'_i(θ, c); D'_i, A'_i), the mean KL ≤ max_kl

The vector starts at zero and has `context_size` entries (cbfinn/maml_rl's sens_minimal_gauss_mlp_policy.py with
mask_units=True: a zero-initialised parameter the size of the observation, concatenated to every input, the only one
its inner update and its test-time optimiser change, l.118, 253-255, 435-437, 494-497). The authors released no
script or result for this row; their TRPO, given get_params(trainable=True), would meta-train the vector alone
(get_params_internal keeps only 'mask' parameters unless all_params), which leaves the network at its
initialisation. Here TRPO trains the network and the vector's initial value, as the appendix describes the baseline
(conditioning a meta-trained network on an adapted input); the claim's notes say so.
"""
from __future__ import annotations

from suite.algorithms import maml_trpo
from suite.algorithms.base import check_evaluation, finetune_steps_limit  # noqa: F401 (the usual answers)
from suite.algorithms.maml_trpo import (ARGS as MAML_TRPO_ARGS, LOGGED_LOSS, carries_inner_state,  # noqa: F401
                                        check, hessian_vector_products, paths, second_order, task_shape)
from suite.lazy import lazy
from suite.protocol.schema import Field

torch = lazy("torch")

# Bump when a change alters what it computes (then regenerate tests/goldens/).
NUMERICS_VERSION = 1

ARGS = {
    **MAML_TRPO_ARGS,
    "context_size": Field("positive_int", doc="entries of the context vector appended to each observation (the "
                                              "code's: the observation's size)"),
}


def extra_inputs(hp: dict) -> int:
    """The model reads the observation and the context vector."""
    return hp["context_size"]


def initial_params(model, seed: int, hp: dict, device) -> dict:
    """MAML's policy over the widened input (suite.algorithms.maml_trpo.initial_params), and the context vector at
    zero (the code's tf.zeros_initializer)."""
    params = maml_trpo.initial_params(model, seed, hp, device)
    params[maml_trpo.CONTEXT] = torch.zeros(hp["context_size"], device=device)
    return params


class Learner(maml_trpo.Learner):
    """MAML-TRPO's meta-iteration: maml_trpo's steps adapt the context vector alone (maml_trpo.adapted_names)."""

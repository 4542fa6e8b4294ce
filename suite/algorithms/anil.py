"""ANIL, Almost No Inner Loop (Raghu, Raghu, Bengio & Vinyals 2020, arXiv 1909.09157, §4): MAML whose inner loop
adapts only the head (the final linear layer); the body is learned by the outer loop alone. The meta-gradient is
MAML's, second order, through the head's adaptation; it reaches the body through the features the head sees.

    sample a batch of tasks T_i
    for each T_i:  z_s, z_q = f_φ(support), f_φ(query)                 (the body's features, once per task)
                   w'_i = w − α ∇w L_Ti(h_w(z_s))                       (inner_steps times, the head only)
    (φ, w) ← Adam((φ, w), ∇ Σ_i L_Ti(h_w'_i(z_q)))                     (differentiating through w'_i and z)

At test time too only the head is fine-tuned (the runner restricts fine-tuning to `inner_loop_names`).

With the body fixed during the inner loop its features do not change, so computing them once gives MAML's
meta-loss with the inner loop restricted to the head (batch norm in the body still normalises the support and
the query batch each with its own statistics, as the full forward pass does), at the cost of one body pass.
"""
from __future__ import annotations

import suite.algorithms.maml as maml
from suite.algorithms.base import (check_evaluation, extra_inputs, finetune_steps_limit,  # noqa: F401
                                   initial_params, paths)  # (the protocol's usual answers)
from suite.algorithms.inner import sgd_adapt
from suite.algorithms.maml import ARGS, carries_inner_state, check, task_shape  # noqa: F401

# Bump when a change alters what it computes (then regenerate tests/goldens/).
NUMERICS_VERSION = 1
LOGGED_LOSS = "the mean query loss of the meta-batch after adapting the head"


def second_order(hp: dict) -> bool:
    return False  # second order through the head's steps alone: no double backward through the body


def hessian_vector_products(hp: dict) -> bool:
    return False



def adapt_head(model, params, support_z, support_y, steps, lr) -> dict:
    """The head's parameters after `steps` gradient steps on the support features; differentiable w.r.t. params
    and the features."""
    def head_loss(head, z, y):
        return model.loss_of_outputs(model.head(head, z), y)

    head = {k: params[k] for k in model.head_names}
    return sgd_adapt(head_loss, head, support_z, support_y, steps, lr)


def query_loss_after_adaptation(model, params, support_x, support_y, query_x, query_y, steps, lr):
    support_z, query_z = model.features(params, support_x), model.features(params, query_x)
    adapted = adapt_head(model, params, support_z, support_y, steps, lr)
    return model.loss_of_outputs(model.head(adapted, query_z), query_y)


def meta_loss(model, params, tasks, steps, lr, path: str):
    """Mean over tasks of the query loss after adapting the head."""
    return maml.meta_loss(model, params, tasks, steps, lr, path, query_loss_after_adaptation)


def meta_gradient(model, params, tasks, steps, lr, path: str):
    """(∇ of the meta-loss for body and head, the meta-loss), second order through the head's inner steps."""
    return maml.meta_gradient(model, params, tasks, steps, lr, path, query_loss_after_adaptation)


class Learner(maml.Learner):
    task_loss = staticmethod(query_loss_after_adaptation)

    @property
    def inner_loop_names(self):
        return self.model.head_names & self.model.inner_loop_names

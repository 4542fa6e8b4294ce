"""Reference implementations that `suite bench` times beside the suite's own paths, on the same tasks and model:
the plainest hand-written PyTorch loop (MAML: torch.autograd.grad with create_graph=True; Reptile: an nn.Module,
loss.backward() and torch.optim.Adam) and learn2learn's MAML wrapper, the field's common library, where it is
installed (scripts/install-learn2learn.sh: its 0.2.0 sdist no longer builds on Python 3.11 as published).

Each is `step(tasks, iteration, generator)` on a Learner's model and hyperparameters, training its own copy of the
parameters; they are timed, never used for results.
"""
from __future__ import annotations

import copy
import importlib.util

import torch

from suite.algorithms.base import make_torch_optimizer
from suite.algorithms.inner import inner_batches

LEARN2LEARN = "learn2learn 0.2.0"


def autograd_loop_step(learner):
    """Second-order MAML written as the plainest per-task loop: torch.autograd.grad(create_graph=True)."""
    params, hp, loss = learner.params, learner.hp, learner.model.loss

    def step(tasks, iteration, generator):
        for i in range(len(tasks)):
            sx, sy, qx, qy = tasks[i].tensors()
            adapted = dict(params)
            for _ in range(hp["inner_steps"]):
                grads = torch.autograd.grad(loss(adapted, sx, sy), list(adapted.values()), create_graph=True)
                adapted = {k: p - hp["inner_lr"] * g for (k, p), g in zip(adapted.items(), grads)}
            (loss(adapted, qx, qy) / len(tasks)).backward()
        learner.optimizer.step()
        learner.optimizer.zero_grad(set_to_none=True)

    return step


def plain_reptile_step(learner):
    """Reptile as a plain PyTorch loop: the model as an nn.Module, each inner step loss.backward() and
    torch.optim.Adam's step (its own Adam form, not TensorFlow's), the state carried across tasks or fresh per task
    as the run says, then φ ← φ + ε · mean(W − φ). SGD inner loops use torch.optim.SGD. Its inner loop is the
    run's whatever its meta_direction (the direction only changes what is summed), with ε held at meta_step."""
    model, hp = learner.model, learner.hp
    module = copy.deepcopy(model.module).to(next(iter(learner.params.values())).device)
    phi = [learner.params[name].detach().clone() for name, _ in module.named_parameters()]
    config = hp["inner_optimizer"]

    def inner_optimizer():
        if config["name"] == "sgd":
            return torch.optim.SGD(module.parameters(), lr=config["lr"])
        return torch.optim.Adam(module.parameters(), lr=config["lr"], betas=tuple(config["betas"]), eps=config["eps"])

    carried = inner_optimizer()

    def step(tasks, iteration, generator):
        batches = inner_batches(len(tasks), tasks.support_x.shape[1], hp["inner_batch"], hp["inner_steps"], generator)
        total = [torch.zeros_like(p) for p in phi]
        for i in range(len(tasks)):
            with torch.no_grad():
                for p, start in zip(module.parameters(), phi):
                    p.copy_(start)
            optimizer = carried if hp["inner_optimizer_state"] == "carried" else inner_optimizer()
            for b in batches[i]:
                optimizer.zero_grad(set_to_none=True)
                model.loss_of_outputs(module(tasks.support_x[i][b]), tasks.support_y[i][b]).backward()
                optimizer.step()
            with torch.no_grad():
                for t, p, start in zip(total, module.parameters(), phi):
                    t += p - start
        epsilon = hp["meta_step"]
        for p, t in zip(phi, total):
            p += epsilon * t / len(tasks)

    return step


def has_learn2learn() -> bool:
    return importlib.util.find_spec("learn2learn") is not None


def learn2learn_step(learner, algorithm: str):
    """MAML, first-order MAML or ANIL as learn2learn's examples write them: l2l.algorithms.MAML around the model
    (ANIL: around its head, on features computed once per task), clone() and adapt() per task, the query loss
    backpropagated task by task. learn2learn adapts every parameter the wrapper holds (it has no per-parameter
    inner loop), so where the claim keeps batch norm out of the inner loop it does slightly more work."""
    import learn2learn as l2l

    model, hp = learner.model, learner.hp
    module = copy.deepcopy(model.module).to(next(iter(learner.params.values())).device)
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(learner.params[name])
    optimizer = make_torch_optimizer(dict(module.named_parameters()), hp["meta_optimizer"])
    loss = model.loss_of_outputs
    if algorithm == "anil":
        body, head = module[:-1], l2l.algorithms.MAML(module[-1], lr=hp["inner_lr"])
    else:
        body, head = None, l2l.algorithms.MAML(module, lr=hp["inner_lr"], first_order=algorithm == "fomaml")

    def step(tasks, iteration, generator):
        for i in range(len(tasks)):
            sx, sy, qx, qy = tasks[i].tensors()
            if body is not None:
                sx, qx = body(sx), body(qx)
            adapted = head.clone()
            for _ in range(hp["inner_steps"]):
                adapted.adapt(loss(adapted(sx), sy))
            (loss(adapted(qx), qy) / len(tasks)).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step

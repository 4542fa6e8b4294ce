"""Reptile (Nichol, Achiam & Schulman 2018, arXiv 1803.02999 v3, Algorithm 2, batched version).

    ε = meta_step annealed linearly to meta_step_final over the iterations
    for each of n tasks T_i:  W_i = k steps of the inner optimiser on mini-batches of T_i, from φ
    φ ← φ + ε · mean_i (W_i − φ)

With inner_optimizer_state 'carried', one Adam state runs on through the tasks (serially) and the iterations, as in
supervised-reptile, which resets only the trainable variables between tasks; 'per-task' starts each task afresh.

With meta_direction 'last-step' the direction is only the last inner step's displacement W_i − W_i^(k−1): the
first-order MAML that supervised-reptile implements (--foml), the gk-alone variant of the paper's §6.

With tail_shots set, first-order MAML takes a separate tail (supervised-reptile's --foml-tail, §6.3): that many
images per class are kept out of the first k−1 inner steps, and the last step is taken on all of them. Without it the
last mini-batch comes from the same stream as the others (shared tail) and may repeat images they used.

With meta_batch = 1 this is the serial version (Algorithm 1). The inner mini-batches are drawn without
replacement from the task's `shots` points, reshuffled when exhausted (supervised-reptile's _mini_batches).
"""
from __future__ import annotations

from suite.algorithms.base import (check_evaluation, extra_inputs, finetune_steps_limit,  # noqa: F401
                                   initial_params, paths)  # (the protocol's usual answers)
from suite.algorithms.base import Learner as BaseLearner, map_tasks
from suite.algorithms.inner import InnerOptimizer, inner_batches, optimizer_adapt
from suite.lazy import lazy
from suite.protocol.fields import INNER_OPTIMIZER
from suite.protocol.schema import Field, ManifestError

torch = lazy("torch")

# Bump when a change alters what it computes (then regenerate tests/goldens/).
NUMERICS_VERSION = 1
LOGGED_LOSS = ("the mean support loss of φ before the update, also for the first-order MAML it runs with "
               "meta_direction last-step (as Reptile's code logs it)")

ARGS = {
    "iterations": Field("positive_int", doc="meta-iterations"),
    "meta_batch": Field("positive_int", doc="tasks per meta-iteration (1 = serial Reptile)"),
    "shots": Field("positive_int", doc="training points (regression) or images per class for each task"),
    "inner_batch": Field("positive_int", doc="points (or images) per inner mini-batch"),
    "inner_steps": Field("positive_int", doc="k, inner-loop iterations per task"),
    "inner_optimizer": Field(INNER_OPTIMIZER, doc="sgd, or adam-tf (TensorFlow's Adam, β1 = 0 in the paper's code)"),
    "meta_step": Field("positive_float", doc="ε at the first iteration"),
    "meta_step_final": Field("float", doc="ε at the last iteration (linear annealing; equal to meta_step for none)"),
    "inner_optimizer_state": Field("str", choices=("per-task", "carried"),
                                   doc="'per-task': each task's inner optimiser starts afresh (vectorisable); "
                                       "'carried': Adam's moments and step count carry over from task to task and "
                                       "iteration to iteration (supervised-reptile)"),
    "meta_direction": Field("str", choices=("all-steps", "last-step"),
                            doc="'all-steps': W − φ (Reptile); 'last-step': the last inner step only (first-order "
                                "MAML as supervised-reptile's --foml computes it)"),
    "tail_shots": Field("positive_int", required=False,
                        doc="last-step only: images per class held out of the first k−1 inner steps and used, all "
                            "of them, as the last step's mini-batch (separate tail, supervised-reptile --foml-tail); "
                            "absent: the last mini-batch comes from the same stream as the others (shared tail)"),
}


def check(hp: dict, task: dict, family, where: str):
    if hp["inner_optimizer_state"] == "carried" and hp["inner_optimizer"]["name"] != "adam-tf":
        raise ManifestError(f"{where}.inner_optimizer_state: 'carried' keeps Adam's moments; SGD has none")
    if "tail_shots" in hp:
        if hp["meta_direction"] != "last-step":
            raise ManifestError(f"{where}.tail_shots: a separate tail is first-order MAML's final mini-batch; it "
                                "needs meta_direction: last-step")
        if hp["tail_shots"] >= hp["shots"]:
            raise ManifestError(f"{where}.tail_shots: {hp['tail_shots']} leaves none of the {hp['shots']} shots "
                                "for the first inner steps")
        if family.LOSS != "cross_entropy":
            raise ManifestError(f"{where}.tail_shots: a separate tail holds images per class; {task['family']} "
                                "tasks have no classes")
    streamed = hp["shots"] - (hp["tail_shots"] if "tail_shots" in hp else 0)  # what the mini-batches draw from
    if hp["inner_batch"] > family.support_points(task, streamed):
        raise ManifestError(f"{where}.inner_batch: {hp['inner_batch']} is more than the "
                            f"{family.support_points(task, streamed)} training points of a task"
                            + (" outside its separate tail" if "tail_shots" in hp else ""))


def task_shape(hp: dict) -> tuple[int, int, int]:
    return hp["meta_batch"], hp["shots"], 0  # the inner loop's points only: Reptile has no query set


def carries_inner_state(hp: dict) -> bool:
    return hp["inner_optimizer_state"] == "carried"


def second_order(hp: dict) -> bool:
    return False


def hessian_vector_products(hp: dict) -> bool:
    return False



def detached(state: dict) -> dict:
    return {"m": {k: v.detach() for k, v in state["m"].items()},
            "v": {k: v.detach() for k, v in state["v"].items()}, "t": int(state["t"])}


def meta_step_size(hp, iteration: int) -> float:
    frac = iteration / hp["iterations"]
    return frac * hp["meta_step_final"] + (1 - frac) * hp["meta_step"]


def separate_tail_batches(labels, tail_shots, batch_size, steps, generator) -> list:
    """Per step, indices [n_tasks, size]: k−1 mini-batches streamed from the points outside the tail, then the
    tail, the first tail_shots points of each class (a random choice: a class's points are a random sample), as
    supervised-reptile's _split_train_test takes it."""
    n_tasks, n_points = labels.shape
    ways = int(labels.max()) + 1
    by_class = torch.argsort(labels.cpu(), dim=1, stable=True).reshape(n_tasks, ways, n_points // ways)
    tail, rest = by_class[:, :, :tail_shots].reshape(n_tasks, -1), by_class[:, :, tail_shots:].reshape(n_tasks, -1)
    if steps == 1:
        return [tail]
    positions = inner_batches(n_tasks, rest.shape[1], batch_size, steps - 1, generator)
    return [torch.gather(rest, 1, p) for p in positions.unbind(1)] + [tail]


class Learner(BaseLearner):
    def __init__(self, model, params, hp, path):
        super().__init__(model, params, hp, path)
        self.carried = carries_inner_state(hp)
        if self.carried:
            self.inner_state = detached(InnerOptimizer(hp["inner_optimizer"]).init(self.params))

    def state_dict(self):
        return {**super().state_dict(), "inner_state": self.inner_state}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.inner_state = state["inner_state"]

    def batches(self, tasks, generator) -> list:
        """The inner mini-batches, one [n_tasks, size] index tensor per step."""
        hp = self.hp
        if "tail_shots" in hp:
            steps = separate_tail_batches(tasks.support_y, hp["tail_shots"], hp["inner_batch"], hp["inner_steps"],
                                          generator)
        else:
            steps = inner_batches(len(tasks), tasks.support_x.shape[1], hp["inner_batch"], hp["inner_steps"],
                                  generator).unbind(1)
        return [b.to(tasks.support_x.device) for b in steps]

    def directions(self, tasks, batches):
        """Per task, the displacement the meta-update follows: W_i − φ, or the last inner step's."""
        params = {k: p.detach() for k, p in self.params.items()}
        last_only = self.hp["meta_direction"] == "last-step"

        def direction_for_task(model, p, x, y, b, state=None):
            final, before_last, state = optimizer_adapt(model.loss, p, x, y, b, self.hp["inner_optimizer"],
                                                        model.inner_loop_names, state)
            start = before_last if last_only else p
            return {k: final[k] - start[k] for k in final}, state

        if self.carried:  # serial on every path: each task starts from the state the previous one left
            grouped = self.path == "grouped"  # then the grouped model, on a group of one task at a time
            model = self.model.grouped() if grouped else self.model
            one = (lambda i: slice(i, i + 1)) if grouped else (lambda i: i)  # task i, as a group of one or alone
            alone = (lambda tree: {k: v[0] for k, v in tree.items()}) if grouped else (lambda tree: tree)
            start = {k: p.unsqueeze(0) for k, p in params.items()} if grouped else params
            per = []
            for i in range(len(tasks)):
                d, state = direction_for_task(model, start, tasks.support_x[one(i)], tasks.support_y[one(i)],
                                              [b[one(i)] for b in batches], self.inner_state)
                self.inner_state = detached({"m": alone(state["m"]), "v": alone(state["v"]), "t": state["t"]})
                per.append(alone(d))
            return {k: torch.stack([d[k] for d in per]) for k in params}
        return map_tasks(lambda *a: direction_for_task(*a)[0], self.path, self.model, params, tasks.support_x,
                         tasks.support_y, batches)

    def step(self, tasks, iteration, generator):
        with torch.no_grad():  # reported: the mean support loss of φ before this update (the loop's by vmap too)
            loss = map_tasks(lambda model, p, x, y: model.loss(p, x, y), "grouped" if self.path == "grouped" else
                             "vmap", self.model, self.params, tasks.support_x, tasks.support_y).mean()
        directions = self.directions(tasks, self.batches(tasks, generator))
        epsilon = meta_step_size(self.hp, iteration)
        with torch.no_grad():
            for k, p in self.params.items():
                p.add_(epsilon * directions[k].mean(0))
        return loss.item()

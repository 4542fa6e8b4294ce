"""Sinusoid tasks, the vectorised and looped paths, and the episodic evaluation."""
import math

import pytest
import torch

from suite.algorithms import make_learner
from suite.evaluate import TASK_STREAM, evaluate, predict, summarise
from suite.tasks import seeded_generator
from suite.models import FunctionalModel
from suite.tasks.sinusoid import Tasks

TASKS = Tasks(amplitude=[0.1, 5.0], phase=[0.0, math.pi], x_range=[-5.0, 5.0])
MLP = {"kind": "mlp", "hidden": [40, 40], "activation": "relu", "init": "truncated-normal", "init_std": 0.01}


def test_sinusoid_tasks_follow_the_maml_distribution_and_depend_only_on_the_generator():
    batch = TASKS.sample(2000, 5, 5, torch.Generator().manual_seed(0), split="train")
    x = torch.cat([batch.support_x, batch.query_x], 1)
    y = torch.cat([batch.support_y, batch.query_y], 1)
    assert x.min() >= -5 and x.max() <= 5 and x.shape == (2000, 10, 1)
    amplitude = y.abs().amax(dim=(1, 2))
    assert amplitude.max() <= 5.0 and amplitude.mean() > 1.5  # A ~ U[0.1, 5]: mean of |y| maxima near 2.3
    again = TASKS.sample(2000, 5, 5, torch.Generator().manual_seed(0), split="train")
    assert torch.equal(again.support_y, batch.support_y)
    other = TASKS.sample(2000, 5, 5, torch.Generator().manual_seed(1), split="train")
    assert not torch.equal(other.support_y, batch.support_y)


ADAM = {"name": "adam", "lr": 0.001, "betas": [0.9, 0.999], "eps": 1e-8}
HYPERPARAMETERS = {
    "maml": {"iterations": 5, "meta_batch": 6, "shots": 5, "queries": 5, "inner_steps": 2, "inner_lr": 0.01,
             "meta_optimizer": ADAM},
    "reptile": {"iterations": 5, "meta_batch": 6, "shots": 10, "inner_batch": 5, "inner_steps": 3,
                "inner_optimizer": dict(ADAM, betas=[0.0, 0.999]), "meta_step": 1.0, "meta_step_final": 0.0,
                "meta_direction": "all-steps", "inner_optimizer_state": "per-task"},
}
HYPERPARAMETERS["fomaml"] = HYPERPARAMETERS["maml"]


@pytest.mark.parametrize("algorithm", ["maml", "fomaml", "reptile"])
def test_vectorised_and_looped_meta_iterations_compute_the_same_update(algorithm):
    model = FunctionalModel(MLP, 1, 1, "mse")
    params = model.init_params(0, dtype=torch.float64)
    hp = HYPERPARAMETERS[algorithm]
    tasks = TASKS.sample(hp["meta_batch"], hp["shots"], hp.get("queries", 0), torch.Generator().manual_seed(3),
                         split="train")
    tasks = type(tasks)(*(t.double() for t in tasks.tensors()))
    results = []
    for vectorize in (True, False):
        learner = make_learner(algorithm, model, params, hp, vectorize)
        loss = learner.step(tasks, 1, torch.Generator().manual_seed(0))
        results.append((loss, {k: v.detach() for k, v in learner.params.items()}))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-10)
    for k in params:
        torch.testing.assert_close(results[0][1][k], results[1][1][k], rtol=1e-9, atol=1e-12)
        assert not torch.equal(results[0][1][k], params[k])  # the step did move the parameters


EVAL = {"tasks": 30, "seed": 1, "shots": 5, "queries": 20, "steps": [0, 1, 3], "optimizer": {"name": "sgd", "lr": 0.01},
        "batch_size": "full", "batch_norm": "none", "interval": "ci95-normal", "optimizer_state": "fresh"}


def test_evaluation_is_fixed_by_its_seed_and_chunking_does_not_change_it():
    model = FunctionalModel(MLP, 1, 1, "mse")
    params = model.init_params(0)
    a = evaluate(model, params, TASKS, EVAL, "cpu", vectorize=True, chunk=30)
    b = evaluate(model, params, TASKS, EVAL, "cpu", vectorize=True, chunk=7)
    c = evaluate(model, params, TASKS, EVAL, "cpu", vectorize=False, chunk=30)
    fewer = evaluate(model, params, TASKS, dict(EVAL, tasks=10), "cpu", vectorize=True, chunk=30)
    assert fewer["episodes"]["mse@3"] == pytest.approx(a["episodes"]["mse@3"][:10], rel=1e-5)  # task i is fixed
    assert set(a["episodes"]) == {"mse@0", "mse@1", "mse@3"} and len(a["episodes"]["mse@1"]) == 30
    for name in a["episodes"]:
        assert a["episodes"][name] == pytest.approx(b["episodes"][name], rel=1e-5)
        assert a["episodes"][name] == pytest.approx(c["episodes"][name], rel=1e-5)
    other = evaluate(model, params, TASKS, dict(EVAL, seed=2), "cpu", vectorize=True, chunk=30)
    assert other["episodes"]["mse@0"] != pytest.approx(a["episodes"]["mse@0"])


def test_step_zero_is_the_unadapted_model_and_later_steps_are_sgd_on_the_support_set():
    model = FunctionalModel(MLP, 1, 1, "mse")
    params = model.init_params(0)
    config = dict(EVAL, tasks=1, steps=[0, 2])
    result = evaluate(model, params, TASKS, config, "cpu", vectorize=True, chunk=1)
    task = TASKS.sample(1, 5, 20, seeded_generator(config["seed"], 0, TASK_STREAM), split="test")[0]
    assert result["episodes"]["mse@0"][0] == pytest.approx(model.loss(params, task.query_x, task.query_y).item())
    adapted = params
    for _ in range(2):
        grads = torch.func.grad(model.loss)(adapted, task.support_x, task.support_y)
        adapted = {k: p - 0.01 * grads[k] for k, p in adapted.items()}
    assert result["episodes"]["mse@2"][0] == pytest.approx(model.loss(adapted, task.query_x, task.query_y).item())


def test_summary_is_mean_population_std_and_maml_style_ci95():
    s = summarise([1.0, 2.0, 3.0, 4.0])
    assert s["mean"] == 2.5 and s["std"] == pytest.approx(math.sqrt(1.25))
    assert s["ci95"] == pytest.approx(1.96 * math.sqrt(1.25) / 2)


def test_non_transductive_prediction_normalises_each_query_with_the_support_set_only():
    config = {"kind": "conv", "in_channels": 1, "image_size": 8, "filters": 4, "layers": 2, "downsample": "stride",
              "batch_norm_eps": 1e-3, "batch_norm_scale": True, "batch_norm_adapted": True, "head": "flatten",
              "init": "pytorch"}
    model = FunctionalModel(config, 1, 3, "cross_entropy")
    params = model.init_params(0)
    g = torch.Generator().manual_seed(0)
    support, queries = torch.randn(6, 1, 8, 8, generator=g), torch.randn(4, 1, 8, 8, generator=g)
    alone = predict(model, params, support, queries, "non-transductive")
    for j in range(4):
        expected = model.forward(params, torch.cat([support, queries[j:j + 1]]))[-1]
        torch.testing.assert_close(alone[j], expected)
    together = predict(model, params, support, queries, "transductive")
    assert not torch.allclose(together, alone)  # batch statistics of the query set change the outputs
    # and a non-transductive prediction does not depend on the other queries
    shuffled = predict(model, params, support, queries.flip(0), "non-transductive").flip(0)
    torch.testing.assert_close(shuffled, alone)

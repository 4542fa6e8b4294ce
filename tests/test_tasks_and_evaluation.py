"""Sinusoid tasks, the vectorised and looped paths, and the episodic evaluation."""
import math
from pathlib import Path

import pytest
import torch
import yaml

from suite.training import evaluate as evaluation_module
from suite.protocol.components import algorithms
from suite.training.evaluate import TASK_STREAM, evaluate, finetune_curve, predict, summarise
from suite.protocol.manifest import ManifestError, load_manifest, metric_names
from suite.tasks.base import TaskBatch, seeded_generator
from suite.models.functional import FunctionalModel
from suite.training.paths import PATHS
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
                "inner_optimizer": dict(ADAM, name="adam-tf", betas=[0.0, 0.999]), "meta_step": 1.0, "meta_step_final": 0.0,
                "meta_direction": "all-steps", "inner_optimizer_state": "per-task"},
}
HYPERPARAMETERS["fomaml"] = HYPERPARAMETERS["anil"] = HYPERPARAMETERS["maml"]


@pytest.mark.parametrize("algorithm", ["maml", "fomaml", "anil", "reptile"])
def test_every_path_computes_the_same_meta_iteration(algorithm):
    model = FunctionalModel(MLP, 1, 1, "mse", 1.0, "mean")
    params = model.init_params(0, dtype=torch.float64)
    hp = HYPERPARAMETERS[algorithm]
    tasks = TASKS.sample(hp["meta_batch"], hp["shots"], hp.get("queries", 0), torch.Generator().manual_seed(3),
                         split="train")
    tasks = type(tasks)(*(t.double() for t in tasks.tensors()))
    results = []
    for path in PATHS:
        learner = algorithms()[algorithm].Learner(model, params, hp, path)
        loss = learner.step(tasks, 1, torch.Generator().manual_seed(0))
        results.append((loss, {k: v.detach() for k, v in learner.params.items()}))
    for loss, stepped in results[1:]:
        assert loss == pytest.approx(results[0][0], rel=1e-10)
        for k in params:
            torch.testing.assert_close(stepped[k], results[0][1][k], rtol=1e-9, atol=1e-12)
    assert all(not torch.equal(results[0][1][k], params[k]) for k in params)  # the step did move the parameters


EVAL = {"tasks": 30, "seed": 1, "shots": 5, "queries": 20, "steps": [0, 1, 3], "optimizer": {"name": "sgd", "lr": 0.01},
        "batch_size": "full", "batch_norm": "none", "interval": "ci95-normal", "optimizer_state": "fresh"}


def test_evaluation_is_fixed_by_its_seed_and_chunking_does_not_change_it():
    model = FunctionalModel(MLP, 1, 1, "mse", 1.0, "mean")
    params = model.init_params(0)
    a = evaluate(model, params, TASKS, EVAL, "cpu", "vmap", chunk=30)
    b = evaluate(model, params, TASKS, EVAL, "cpu", "vmap", chunk=7)
    c = evaluate(model, params, TASKS, EVAL, "cpu", "loop", chunk=30)
    d = evaluate(model, params, TASKS, EVAL, "cpu", "grouped", chunk=30)
    fewer = evaluate(model, params, TASKS, dict(EVAL, tasks=10), "cpu", "vmap", chunk=30)
    assert fewer["episodes"]["mse@3"] == pytest.approx(a["episodes"]["mse@3"][:10], rel=1e-5)  # task i is fixed
    assert set(a["episodes"]) == {"mse@0", "mse@1", "mse@3"} and len(a["episodes"]["mse@1"]) == 30
    for name in a["episodes"]:
        assert a["episodes"][name] == pytest.approx(b["episodes"][name], rel=1e-5)
        assert a["episodes"][name] == pytest.approx(c["episodes"][name], rel=1e-5)
        assert a["episodes"][name] == pytest.approx(d["episodes"][name], rel=1e-5)
    other = evaluate(model, params, TASKS, dict(EVAL, seed=2), "cpu", "vmap", chunk=30)
    assert other["episodes"]["mse@0"] != pytest.approx(a["episodes"]["mse@0"])


def test_step_zero_is_the_unadapted_model_and_later_steps_are_sgd_on_the_support_set():
    model = FunctionalModel(MLP, 1, 1, "mse", 1.0, "mean")
    params = model.init_params(0)
    config = dict(EVAL, tasks=1, steps=[0, 2])
    result = evaluate(model, params, TASKS, config, "cpu", "vmap", chunk=1)
    task = TASKS.sample(1, 5, 20, seeded_generator(config["seed"], 0, TASK_STREAM), split="test")[0]
    assert result["episodes"]["mse@0"][0] == pytest.approx(model.loss(params, task.query_x, task.query_y).item())
    adapted = params
    for _ in range(2):
        grads = torch.func.grad(model.loss)(adapted, task.support_x, task.support_y)
        adapted = {k: p - 0.01 * grads[k] for k, p in adapted.items()}
    assert result["episodes"]["mse@2"][0] == pytest.approx(model.loss(adapted, task.query_x, task.query_y).item())


def test_summary_is_mean_population_std_and_maml_style_ci95():
    s = summarise([1.0, 2.0, 3.0, 4.0], "ci95-normal")
    assert s["mean"] == 2.5 and s["std"] == pytest.approx(math.sqrt(1.25))
    assert s["ci95"] == pytest.approx(1.96 * math.sqrt(1.25) / 2)


def test_non_transductive_prediction_normalises_each_query_with_the_support_set_only():
    config = {"kind": "conv", "in_channels": 1, "image_size": 8, "filters": 4, "layers": 2, "downsample": "stride",
              "batch_norm_eps": 1e-3, "batch_norm_scale": True, "batch_norm_adapted": True, "head": "flatten",
              "init": "pytorch"}
    model = FunctionalModel(config, 1, 3, "cross_entropy", 1.0, "mean")
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


CONV = {"kind": "conv", "in_channels": 1, "image_size": 8, "filters": 3, "layers": 3, "downsample": "stride",
        "batch_norm_eps": 1e-3, "batch_norm_scale": True, "batch_norm_adapted": True, "head": "flatten",
        "init": "glorot"}


class RandomImages:
    """3-way tasks of random 8×8 images: enough to fine-tune a small Conv model without Omniglot."""

    ways = 3

    def sample(self, n_tasks, shots, queries, generator, split):
        x = torch.randn(n_tasks, self.ways * (shots + queries), 1, 8, 8, generator=generator)
        y = torch.arange(self.ways).repeat(shots + queries).expand(n_tasks, -1)
        support = self.ways * shots
        return TaskBatch(x[:, :support], y[:, :support], x[:, support:], y[:, support:])


CONV_EVAL = dict(EVAL, tasks=6, shots=2, queries=2, steps=[0, 1, 3], optimizer={"name": "sgd", "lr": 0.5},
                 batch_norm=["transductive", "non-transductive"])


def test_conv_blocks_name_their_convolution_and_batch_norm_parameters():
    model = FunctionalModel(CONV, 1, 3, "cross_entropy", 1.0, "mean")
    assert [model.conv_block_names(i) for i in (1, 2, 3)] == [
        {"0.weight", "0.bias", "1.weight", "1.bias"}, {"3.weight", "3.bias", "4.weight", "4.bias"},
        {"6.weight", "6.bias", "7.weight", "7.bias"}]
    assert model.head_names == {"10.weight", "10.bias"}  # after ReLU and Flatten
    with pytest.raises(ValueError, match="1..3"):
        model.conv_block_names(4)


@pytest.mark.parametrize("batch_norm_adapted", [True, False])
@pytest.mark.parametrize("optimizer", [{"name": "sgd", "lr": 0.5},
                                       {"name": "adam-tf", "lr": 0.01, "betas": [0.9, 0.999], "eps": 1e-8}])
def test_frozen_blocks_stay_bitwise_as_trained_while_the_rest_fine_tunes(monkeypatch, batch_norm_adapted, optimizer):
    model = FunctionalModel(dict(CONV, batch_norm_adapted=batch_norm_adapted), 1, 3, "cross_entropy", 1.0, "mean")
    params = model.init_params(0)
    params = {k: v + 0.1 * torch.randn(v.shape, generator=torch.Generator().manual_seed(1))
              for k, v in params.items()}  # batch-norm affine ≠ (1, 0), so its gradients are not degenerate
    task = RandomImages().sample(1, 2, 2, torch.Generator().manual_seed(0), "test")[0]
    seen = []
    real = evaluation_module.query_outputs
    monkeypatch.setattr(evaluation_module, "query_outputs", lambda m, p, *a: seen.append(p) or real(m, p, *a))
    finetune_curve(model, params, *task.tensors(), None, dict(CONV_EVAL, optimizer=optimizer), frozen_blocks=(1, 3))
    final = seen[-1]  # the parameters the last recorded step measured
    batch_norm = {k for k in params if k.split(".")[0] in ("1", "4", "7")}
    for k in params:
        frozen = k in model.conv_block_names(1) | model.conv_block_names(3) or (
            not batch_norm_adapted and k in batch_norm)
        if frozen:
            assert torch.equal(final[k], params[k]), k
        elif k not in ("0.bias", "3.bias", "6.bias"):  # a bias right before batch norm has no gradient to follow
            assert not torch.equal(final[k], params[k]), k


def test_frozen_none_is_the_plain_evaluation_and_all_blocks_frozen_fine_tunes_the_head_alone():
    model = FunctionalModel(CONV, 1, 3, "cross_entropy", 1.0, "mean")
    params = model.init_params(0)
    config = dict(CONV_EVAL, frozen_layers=[[], [1], [1, 2], [1, 2, 3]])
    frozen = evaluate(model, params, RandomImages(), config, "cpu", "vmap", chunk=4)["episodes"]
    plain = evaluate(model, params, RandomImages(), CONV_EVAL, "cpu", "vmap", chunk=4)["episodes"]
    anil = algorithms()["anil"].Learner(model, params, {"meta_optimizer": {"name": "sgd", "lr": 0.1}}, "vmap")
    head_only = model.adapting_only(anil.inner_loop_names)  # what the runner fine-tunes for an ANIL run
    assert head_only.inner_loop_names == model.head_names and model.inner_loop_names != model.head_names
    head = evaluate(head_only, params, RandomImages(), CONV_EVAL, "cpu", "vmap", chunk=4)["episodes"]
    looped = evaluate(model, params, RandomImages(), config, "cpu", "loop", chunk=4)["episodes"]
    suffixes = ["frozen-none", "frozen-1", "frozen-1-2", "frozen-1-2-3"]
    assert set(frozen) == {f"{m}@{s}/{mode}/{f}" for m in ("loss", "accuracy") for s in (0, 1, 3)
                           for mode in ("transductive", "non-transductive") for f in suffixes}
    for name, values in plain.items():
        assert frozen[f"{name}/frozen-none"] == values  # the same tasks, the same computation
        torch.testing.assert_close(torch.tensor(frozen[f"{name}/frozen-1-2-3"]), torch.tensor(head[name]))
        for f in suffixes:
            torch.testing.assert_close(torch.tensor(looped[f"{name}/{f}"]), torch.tensor(frozen[f"{name}/{f}"]))
    assert frozen["loss@0/transductive/frozen-1"] == frozen["loss@0/transductive/frozen-none"]  # same model
    assert frozen["loss@3/transductive/frozen-1"] != pytest.approx(frozen["loss@3/transductive/frozen-none"])


REPO_MANIFEST = Path(__file__).resolve().parents[1] / "benchmarks.yaml"
ALL_FROZEN_SETS = [[], [1], [1, 2], [1, 2, 3], [1, 2, 3, 4]]


def with_frozen_layers(tmp_path, frozen_layers, claim="omniglot-maml", relation=None):
    """The repository manifest with frozen_layers in the claim's evaluation, or, given a relation, in a new run
    'frozen' (n5-k1 evaluated with the frozen sets: the claim's published numbers name unsuffixed metrics)."""
    raw = yaml.safe_load(REPO_MANIFEST.read_text())
    body = raw["claims"][claim]
    if relation:
        body["runs"]["frozen"] = dict(body["runs"]["n5-k1"], evaluation={"frozen_layers": frozen_layers})
        body["expectations"].setdefault("relations", []).append(relation)
    else:
        body["evaluation"]["frozen_layers"] = frozen_layers
    path = tmp_path / "benchmarks.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_manifest(path)


def test_frozen_layer_metrics_can_be_named_by_expectations(tmp_path):
    relation = {"statement": "freezing the first two blocks at test time costs little", "source": "Table 1",
                "kind": "at_least", "left": ["frozen"], "metrics": ["accuracy@{1..3}/frozen-1-2"],
                "right_metrics": ["accuracy@{1..3}/frozen-none"], "margin": 0.02, "margin_reason": "test"}
    body = with_frozen_layers(tmp_path, ALL_FROZEN_SETS, relation=relation).claim("omniglot-maml").body()
    names = metric_names(body, "frozen")
    assert {"accuracy@3/frozen-none", "accuracy@3/frozen-1-2-3-4", "loss@0/frozen-1"} <= names
    assert "accuracy@3" not in names and "accuracy@3" in metric_names(body, "n5-k1")  # suffixed, as BN modes are
    relation = dict(relation, metrics=["accuracy@3/frozen-2"], right_metrics=["accuracy@3/frozen-none"])
    with pytest.raises(ManifestError, match=r"'accuracy@3/frozen-2' is not measured"):
        with_frozen_layers(tmp_path, ALL_FROZEN_SETS, relation=relation)


@pytest.mark.parametrize("frozen_layers, claim, expected", [
    ([[1, 5]], "omniglot-maml", r"evaluation.frozen_layers\[0\]: the model has conv blocks 1..4, not 5"),
    ([[]], "maml-sinusoid", r"evaluation.frozen_layers: freezing conv blocks needs a conv model, not 'mlp'"),
    ([[2, 1]], "omniglot-maml", r"evaluation.frozen_layers\[0\]: expected increasing 1-based"),
    ([[0]], "omniglot-maml", r"evaluation.frozen_layers\[0\]: expected increasing 1-based"),
    ([[1], [1]], "omniglot-maml", r"evaluation.frozen_layers: a set of frozen blocks is listed twice"),
    ([1, 2], "omniglot-maml", r"evaluation.frozen_layers\[0\]: expected increasing 1-based"),
    ([], "omniglot-maml", r"evaluation.frozen_layers: expected a non-empty list"),
])
def test_bad_frozen_layers_are_one_error_naming_the_field(tmp_path, frozen_layers, claim, expected):
    with pytest.raises(ManifestError, match=expected):
        with_frozen_layers(tmp_path, frozen_layers, claim)

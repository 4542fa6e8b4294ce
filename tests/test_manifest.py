"""The manifest is validated on load: each bad input gives one clear error naming the claim and field."""
import copy
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from suite.cli import main
from suite.protocol.manifest import PAPER, ManifestError, load_manifest

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "benchmarks.yaml"


@pytest.fixture
def raw():
    return yaml.safe_load(MANIFEST.read_text())


def load(raw, tmp_path):
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_manifest(path)


def error_of(raw, tmp_path) -> str:
    with pytest.raises(ManifestError) as info:
        load(raw, tmp_path)
    return str(info.value)


def claim(raw):
    return raw["claims"]["maml-sinusoid"]


def test_the_repository_manifest_is_valid():
    manifest = load_manifest(MANIFEST)
    assert "maml-sinusoid" in manifest.claims
    for c in manifest.claims.values():
        assert {PAPER, "smoke"} <= set(c.profiles)


def test_a_profile_overrides_only_what_it_names(raw, tmp_path):
    c = load(raw, tmp_path).claim("maml-sinusoid")
    paper, smoke = c.body(PAPER), c.body("smoke")
    assert smoke["runs"]["maml"]["iterations"] == claim(raw)["profiles"]["smoke"]["runs"]["maml"]["iterations"]
    assert smoke["runs"]["maml"]["iterations"] != paper["runs"]["maml"]["iterations"]
    assert smoke["runs"]["maml"]["inner_lr"] == paper["runs"]["maml"]["inner_lr"]
    assert smoke["task"] == paper["task"] and smoke["model"] == paper["model"]


def test_the_config_hash_changes_with_a_runs_own_hyperparameters_only(raw, tmp_path):
    before = {c.run: c.hash for c in load(raw, tmp_path).claim("maml-sinusoid").run_configs()}
    claim(raw)["runs"]["maml"]["inner_lr"] = 0.001
    after = {c.run: c.hash for c in load(raw, tmp_path).claim("maml-sinusoid").run_configs()}
    assert before["maml"] != after["maml"] and before["pretrained"] == after["pretrained"]


def set_in(d, path, value):
    keys = path.split(".")
    for k in keys[:-1]:
        d = d[k]
    d[keys[-1]] = value


def delete_in(d, path):
    keys = path.split(".")
    for k in keys[:-1]:
        d = d[k]
    del d[keys[-1]]


@pytest.mark.parametrize("path, value, expected", [
    ("runs.maml.inner_lr", "abc", r"runs.maml.inner_lr: expected a positive number, got 'abc'"),
    ("runs.maml.iterations", 1.5, r"runs.maml.iterations: expected a positive integer"),
    ("runs.maml.inner_lrr", 0.01, r"runs.maml: unknown field 'inner_lrr'"),
    ("runs.maml.algorithm", "mamal", r"runs.maml.algorithm: unknown algorithm 'mamal'"),
    ("task.family", "cosine", r"task.family: unknown task family 'cosine'"),
    ("model.kind", "transformer", r"model.kind: unknown model 'transformer'"),
    ("favourite", 1, r"unknown field 'favourite'"),
    ("task.amplitude", [5.0, 0.1], r"task.amplitude: expected \[low, high\] with low <= high"),
    ("evaluation.batch_norm", "transductive", r"evaluation.batch_norm: the model has no batch norm"),
    ("evaluation.steps", [3, 1], r"evaluation.steps: expected increasing step counts"),
    ("paper", "metanet", r"paper: 'metanet' is not among the manifest's papers"),
    ("runs.maml.meta_optimizer", {"name": "adam", "lr": 0.001}, r"runs.maml.meta_optimizer.betas: required for Adam"),
    ("runs.pretrained.evaluation.lr_search.seed", 1, r"lr_search.seed: must differ from the test tasks' seed"),
    ("seeds", [-1], r"seeds\[0\]: expected a seed"),
    ("runs.maml.inner_lr", float("nan"), r"runs.maml.inner_lr: expected a positive number, got nan"),
    ("model.kind", "conv", r"model: unknown field 'hidden'"),
    ("runs.maml.evaluation", {"batch_size": 50}, r"evaluation.batch_size 50 is more than the 5 support points"),
    ("evaluation.optimizer_state", "from-training", r"runs.maml.evaluation.optimizer_state: 'from-training' needs"),
    ("execution.checkpoint_every", 150, r"execution.checkpoint_every: must be a multiple of log_every"),
    ("evaluation.selection", {"rule": "best-validation"}, r"evaluation.selection.every: required for the rule"),
    ("evaluation.selection", {"rule": "last", "k": 3}, r"evaluation.selection.k: the last model is selected without"),
    ("evaluation.selection", {"rule": "top-k-ensemble", "k": 1, "every": 1, "tasks": 2, "seed": 5},
     r"evaluation.selection.k: an ensemble needs at least 2 models"),
    ("evaluation.selection", {"rule": "best-validation", "every": 1, "tasks": 2, "seed": 1},
     r"evaluation.selection.seed: must differ from the test tasks' seed"),
    ("evaluation.selection", {"rule": "newest"}, r"evaluation.selection.rule: 'newest' is not one of last"),
    ("profiles.smoke.runs.maml.inner_lrr", 1, r"profile 'smoke': runs.maml: unknown field 'inner_lrr'"),
    ("profiles.smoke.expectations", {}, r"profiles.smoke.expectations: a profile may override only"),
    ("profiles.paper", {"seeds": [1]}, r"profiles.paper: the paper profile is the claim itself"),
])
def test_bad_fields_name_the_claim_and_the_field(raw, tmp_path, path, value, expected):
    set_in(claim(raw), path, value)
    message = error_of(raw, tmp_path)
    assert "bench.yaml: claim 'maml-sinusoid': " in message
    assert re.search(expected, message), message


@pytest.mark.parametrize("path, expected", [
    ("expectations.published.0.source", r"expectations.published\[0\].source: missing required field"),
    ("expectations.published.0.tolerance",
     r"expectations.published\[0\].tolerance: required when the published interval is 'none'"),
    ("runs.maml.inner_lr", r"runs.maml.inner_lr: missing required field"),
    ("profiles.smoke", r"profiles.smoke: missing required profile"),
    ("evaluation.seed", r"evaluation.seed: missing required field"),
])
def test_missing_fields_are_named(raw, tmp_path, path, expected):
    c = claim(raw)
    if ".0." in path:
        head, tail = path.split(".0.")
        target = c
        for k in head.split("."):
            target = target[k]
        del target[0][tail]
    else:
        delete_in(c, path)
    message = error_of(raw, tmp_path)
    assert "claim 'maml-sinusoid'" in message
    assert re.search(expected, message), message


def test_expectations_must_name_existing_runs_and_measured_metrics(raw, tmp_path):
    bad = copy.deepcopy(raw)
    claim(bad)["expectations"]["relations"][0]["left"] = ["reptile"]
    assert "expectations.relations[0].left: no run 'reptile'" in error_of(bad, tmp_path)
    bad = copy.deepcopy(raw)
    claim(bad)["expectations"]["published"][0]["metric"] = "mse@20"
    assert "expectations.published[0].metric: 'mse@20' is not measured" in error_of(bad, tmp_path)


def test_every_claims_dataset_must_have_a_fetch_stage_and_results_folders_are_not_claim_ids(raw, tmp_path):
    raw["datasets"] = ["omniglot"]
    assert "claim 'maml-sinusoid': task.family: 'sinusoid' is not in the top-level 'datasets'" in error_of(raw, tmp_path)
    raw["datasets"] = ["sinusoid", "omniglot"]
    raw["claims"]["metrics"] = raw["claims"]["maml-sinusoid"]
    assert "claim 'metrics': 'metrics' names a folder of results/" in error_of(raw, tmp_path)


@pytest.mark.parametrize("path, value, expected", [
    ("runs.n5-k5.shots", 16, r"runs.n5-k5: 16 shots \+ 5 queries per class, but Omniglot has 20 drawers"),
    ("task.ways", 500, r"runs.n5-k1: 500-way tasks from the test split of maml.json, which has 423 classes"),
    ("model.image_size", 32, r"Omniglot needs a conv model with in_channels 1 and image_size 28"),
])
def test_what_the_data_allows_is_checked_before_any_training(raw, tmp_path, path, value, expected):
    set_in(raw["claims"]["omniglot-maml"], path, value)
    message = error_of(raw, tmp_path)
    assert "claim 'omniglot-maml'" in message and re.search(expected, message), message


@pytest.mark.parametrize("tail, run_fields, expected", [
    (2, {"meta_direction": "all-steps"}, r"g2.tail_shots: a separate tail .* needs meta_direction: last-step"),
    (10, {}, r"g2.tail_shots: 10 leaves none of the 10 shots"),
    (6, {}, r"g2.inner_batch: 25 is more than the 20 training points of a task outside its separate tail"),
])
def test_a_separate_tail_is_checked_against_the_direction_and_the_shots(raw, tmp_path, tail, run_fields, expected):
    run = raw["claims"]["reptile-k-ablation"]["runs"]["g2"]
    run.update(tail_shots=tail, **run_fields)
    message = error_of(raw, tmp_path)
    assert "claim 'reptile-k-ablation'" in message and re.search(expected, message), message


def test_figures_name_runs_and_a_metric_they_measure(raw, tmp_path):
    figure = {"title": "t", "metric": "accuracy@5", "x_label": "k", "series": {"sum": {"g1": 1, "sum-g1-g5": 5}}}
    raw["claims"]["reptile-k-ablation"]["figures"] = [figure]
    assert "figures[0].series.sum: no run 'sum-g1-g5'" in error_of(raw, tmp_path)
    figure["series"] = {"sum": {"g1": 1}}
    figure["metric"] = "accuracy@50"
    assert "figures[0].metric: 'accuracy@50' is not measured" in error_of(raw, tmp_path)


def test_run_and_profile_names_are_folder_safe(raw, tmp_path):
    claim(raw)["runs"]["a/b"] = claim(raw)["runs"]["maml"]
    assert "runs.a/b: 'a/b' is not a valid name" in error_of(raw, tmp_path)


def test_papers_need_an_arxiv_id_and_version(raw, tmp_path):
    raw["papers"]["maml"]["arxiv_version"] = "3"
    assert "papers.maml.arxiv_version: expected an arXiv version like v3" in error_of(raw, tmp_path)


def test_malformed_yaml_gives_the_file_and_line(tmp_path):
    path = tmp_path / "bench.yaml"
    path.write_text("version: 1\npapers: {}\nclaims:\n  a: [unclosed\n")
    with pytest.raises(ManifestError, match=r"bench.yaml: malformed YAML at line \d+, column \d+"):
        load_manifest(path)


def test_duplicate_keys_are_an_error_not_silently_the_last(tmp_path):
    path = tmp_path / "bench.yaml"
    path.write_text("version: 1\npapers: {}\nclaims:\n  maml-sinusoid: {}\n  maml-sinusoid: {}\n")
    with pytest.raises(ManifestError, match="line 5, column 3: duplicate key 'maml-sinusoid'"):
        load_manifest(path)


def test_the_cli_reports_manifest_errors_in_one_line_without_a_traceback(raw, tmp_path):
    set_in(claim(raw), "runs.maml.inner_lr", "abc")
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(main, ["--manifest", str(path), "list"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.output.startswith("Error: ") and "runs.maml.inner_lr" in result.output


def test_the_manifest_can_come_from_the_environment(raw, tmp_path, monkeypatch):
    raw["claims"]["my-claim"] = claim(raw)
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("SUITE_MANIFEST", str(path))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["list"])
    assert result.exit_code == 0, result.output
    assert "my-claim" in result.output


def test_unknown_claim_and_profile_are_clear_cli_errors():
    runner = CliRunner()
    result = runner.invoke(main, ["--manifest", str(MANIFEST), "show", "maml-sinusiod"])
    assert result.exit_code == 1 and "no claim 'maml-sinusiod' (claims: maml-sinusoid" in result.output
    result = runner.invoke(main, ["--manifest", str(MANIFEST), "show", "maml-sinusoid", "--profile", "tiny"])
    assert result.exit_code == 1 and "has no profile 'tiny'" in result.output


def test_reported_metrics_are_measured_by_every_run_and_shown_without_a_verdict(raw, tmp_path):
    from suite.verdicts.judge import compared_values
    claim(raw)["expectations"]["reported"] = ["mse@{3..4}"]
    body = load(raw, tmp_path).claim("maml-sinusoid").body(PAPER)
    assert body["expectations"]["reported"] == ["mse@{3..4}"]
    table = compared_values(load(raw, tmp_path).claim("maml-sinusoid"), {})
    for run in body["runs"]:  # every run, each metric, beside what the relations compare
        assert {"mse@3", "mse@4"} <= set(table[table["run"] == run]["metric"])
    claim(raw)["expectations"]["reported"] = ["coverage90@1"]
    assert "expectations.reported: 'coverage90@1' is not measured by run 'maml''s evaluation" in error_of(raw, tmp_path)


def test_runs_that_train_alike_are_grouped_as_one_training_and_resource_measurements_are_not():
    """Reptile trains its 1- and 5-shot Omniglot models alike (10 training shots), so each pair is one training, per
    seed; runs that measure their own training's memory share nothing."""
    from suite.protocol import shared_trainings

    manifest = load_manifest(REPO / "benchmarks.yaml")
    reptile = manifest.claim("omniglot-reptile")
    assert reptile.trained_by() == {"n5-k5": "n5-k1", "n20-k5": "n20-k1", "fomaml-n5-k5": "fomaml-n5-k1",
                                    "fomaml-n20-k5": "fomaml-n20-k1"}
    groups = shared_trainings(reptile.run_configs("paper", seeds=[0, 1]))
    assert [[(c.run, c.seed) for c in g] for g in groups][:3] == [
        [("n5-k1", 0), ("n5-k5", 0)], [("n5-k1", 1), ("n5-k5", 1)], [("n20-k1", 0), ("n20-k5", 0)]]
    assert manifest.claim("omniglot-maml").trained_by() == {}  # MAML trains with the test shots
    memory = manifest.claim("imaml-memory")
    assert len({c.training_key for c in memory.run_configs("smoke")}) < len(memory.run_configs("smoke"))
    assert memory.trained_by("smoke") == {}

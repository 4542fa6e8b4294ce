"""Field declarations that several components share: the optimisers (outer and inner), and the evaluation.

Two Adams, named for what they are:
- `adam`, for outer loops and joint training, is `torch.optim.Adam` (Kingma & Ba, Algorithm 1: ε added to the
  bias-corrected √v̂);
- `adam-tf`, for inner loops and test-time fine-tuning, is TensorFlow's `tf.train.AdamOptimizer` (the form
  supervised-reptile runs): ε added to the uncorrected √v, the bias correction folded into the step size. The two
  differ wherever ε is not negligible against √v (tests/test_gradients.py shows it).
"""
from __future__ import annotations

from suite.protocol.schema import Field, ManifestError, validate


def _optimizer(names: tuple[str, ...], adam: str):
    schema = {
        "name": Field("str", choices=names),
        "lr": Field("positive_float"),
        "betas": Field("float_list", required=False, doc="Adam's (β1, β2)"),
        "eps": Field("positive_float", required=False, doc="Adam's ε"),
    }

    def check(value, where):
        config = validate(value, schema, where)
        if config["name"] == adam:
            for key in ("betas", "eps"):
                if key not in config:
                    raise ManifestError(f"{where}.{key}: required for Adam (write the value the paper's code used)")
            if len(config["betas"]) != 2 or not all(0 <= b < 1 for b in config["betas"]):
                raise ManifestError(f"{where}.betas: expected [β1, β2] in [0, 1), got {config['betas']}")
        elif "betas" in config or "eps" in config:
            raise ManifestError(f"{where}: 'betas' and 'eps' belong to Adam, not {config['name']}")
        return config

    return check


# An outer optimiser (a torch.optim optimiser over the meta-parameters): sgd or adam (torch.optim.Adam).
OUTER_OPTIMIZER = _optimizer(("sgd", "adam"), "adam")
# An inner-loop or fine-tuning optimiser (a pure function of tensors): sgd or adam-tf (TensorFlow's Adam).
INNER_OPTIMIZER = _optimizer(("sgd", "adam-tf"), "adam-tf")

BN_MODES = ("transductive", "non-transductive")
# the half-width of each interval formula, as a multiple of std/√n over the test tasks
INTERVALS = {"ci95-normal": 1.96}


def _positive_int_or_full(v, where):
    if v == "full":
        return v
    if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
        raise ManifestError(f"{where}: expected 'full' or a positive integer, got {v!r}")
    return v


def _batch_norm_modes(v, where):
    ok = v in ("none", *BN_MODES) if isinstance(v, str) else (
        isinstance(v, list) and v and all(m in BN_MODES for m in v) and len(set(v)) == len(v))
    if not ok:
        raise ManifestError(f"{where}: expected 'none', 'transductive', 'non-transductive' or a list of the last "
                            f"two, got {v!r}")
    return v


def _frozen_layer_sets(v, where):
    if not isinstance(v, list) or not v:
        raise ManifestError(f"{where}: expected a non-empty list of conv-block lists like [[], [1], [1, 2]], "
                            f"got {v!r}")
    for i, blocks in enumerate(v):
        if not isinstance(blocks, list) or not all(isinstance(b, int) and not isinstance(b, bool) and b > 0
                                                   for b in blocks) or blocks != sorted(set(blocks)):
            raise ManifestError(f"{where}[{i}]: expected increasing 1-based conv-block indices like [1, 2] (or [] "
                                f"for none frozen), got {blocks!r}")
    if len({tuple(blocks) for blocks in v}) != len(v):
        raise ManifestError(f"{where}: a set of frozen blocks is listed twice in {v!r}")
    return v


SELECTION_RULES = ("last", "best-validation", "top-k-ensemble")
SELECTION = {
    "rule": Field("str", choices=SELECTION_RULES,
                  doc="'last': the model training ends with; 'best-validation': the one whose primary metric on "
                      "the validation tasks was best (early stopping, as MAML's first-order numbers were chosen: "
                      "cbfinn/maml issue 8); 'top-k-ensemble': the k best on validation, each fine-tuned on a test "
                      "task and their query outputs averaged (HowToTrainYourMAMLPytorch's "
                      "evaluated_test_set_using_the_best_models, k = 5)"),
    "every": Field("positive_int", required=False, doc="meta-iterations between two validations (and one after the "
                                                       "last iteration)"),
    "tasks": Field("positive_int", required=False, doc="fixed validation tasks, the same at every validation"),
    "seed": Field("seed", required=False, doc="their seed (not the test tasks')"),
    "k": Field("positive_int", required=False,
               doc="models in the ensemble (at least 2). A training that validates keeps its k best (at least 5) as "
                   "candidates, whatever the rule, so a best-validation and a top-5 selection share one training"),
}


VALIDATION_FIELDS = ("every", "tasks", "seed")  # what a training that validates depends on (not the rule, nor k)
KEPT = 5  # candidates a validating training keeps at least, so that one training serves every rule up to k = 5


def _selection(value, where):
    config = validate(value, SELECTION, where)
    validated = VALIDATION_FIELDS
    if config["rule"] == "last":
        extra = sorted(set(config) - {"rule"})
        if extra:
            raise ManifestError(f"{where}.{extra[0]}: the last model is selected without validation; remove it")
        return config
    for key in validated + (("k",) if config["rule"] == "top-k-ensemble" else ()):
        if key not in config:
            raise ManifestError(f"{where}.{key}: required for the rule {config['rule']!r}")
    if config["rule"] == "best-validation" and "k" in config:
        raise ManifestError(f"{where}.k: 'best-validation' selects one model; an ensemble is 'top-k-ensemble'")
    if config["rule"] == "top-k-ensemble" and config["k"] < 2:
        raise ManifestError(f"{where}.k: an ensemble needs at least 2 models (one is 'best-validation')")
    return config


def selects_by_validation(evaluation: dict) -> bool:
    """Whether an evaluation's model selection validates during training (every rule but 'last')."""
    return (evaluation.get("selection") or {"rule": "last"})["rule"] != "last"


EVALUATION = {
    "tasks": Field("positive_int", doc="number of fixed test tasks"),
    "seed": Field("seed", doc="seed of the test tasks (the same for every run of the claim)"),
    "shots": Field("positive_int", doc="support points, or images per class, of a test task"),
    "queries": Field("positive_int", doc="query points, or images per class, of a test task"),
    "steps": Field("step_list", doc="fine-tuning step counts at which the query set is measured"),
    "optimizer": Field(INNER_OPTIMIZER, doc="test-time fine-tuning optimiser"),
    "batch_size": Field(_positive_int_or_full,
                        doc="'full' (the whole support set each step) or points per mini-batch"),
    "batch_norm": Field(_batch_norm_modes,
                        doc="test-time batch-norm mode: 'transductive' normalises all queries together (MAML's "
                            "code); 'non-transductive' predicts each query in a batch with the support set only "
                            "(Reptile's definition); 'none' for models without batch norm. A list measures each "
                            "mode on the same fine-tuned model, as metrics named like accuracy@50/transductive"),
    "interval": Field("str", choices=tuple(INTERVALS),
                      doc="the ± of a measured mean: 'ci95-normal' is 1.96·std/√n over the test tasks, as MAML's "
                          "code computes it"),
    "selection": Field(_selection, doc="which trained model the test tasks evaluate: {rule: last}, or a rule that "
                                       "validates during training (SELECTION's fields)"),
    "optimizer_state": Field("str", choices=("fresh", "from-training"),
                             doc="'fresh': each test task's fine-tuning starts a new optimiser; 'from-training': it "
                                 "starts from the inner Adam state training left (supervised-reptile's evaluation "
                                 "restores all variables, Adam's included, after each task)"),
    "during_training": Field({
        "every": Field("positive_int", doc="meta-iterations between two points of the test-accuracy curve"),
        "tasks": Field("positive_int", doc="fresh test tasks evaluated at each point"),
        "seed": Field("seed"),
    }, required=False, doc="a learning curve on test tasks while training (supervised-reptile evaluates one "
                           "train and one test task every --eval-interval iterations)"),
    "frozen_layers": Field(_frozen_layer_sets, required=False,
                           doc="sets of conv blocks (1-based: block i is the i-th convolution and its batch norm) "
                               "kept frozen during test-time fine-tuning, each measured on the same trained model "
                               "and test tasks, as metrics named like accuracy@10/frozen-none or "
                               "accuracy@10/transductive/frozen-1-2; only the later blocks' parameters and the "
                               "head adapt (those of them the model's inner loops update: batch_norm_adapted "
                               "still holds). Raghu et al.'s layer-freezing experiment (arXiv 1909.09157) is "
                               "[[], [1], [1, 2], [1, 2, 3], [1, 2, 3, 4]]"),
    "test_tasks": Field("str", required=False,
                        doc="draw the test tasks exactly as a paper's released code does, from its own random "
                            "stream (a task family lists the codes it follows in CODE_TEST_TASKS; e.g. sinusoid's "
                            "'cbfinn-maml'); without it, test task i comes from the suite's stream seeded by "
                            "(seed, i)"),
    "test_split": Field("str", required=False, choices=("test", "val"),
                        doc="the split whose classes the test tasks draw; without it, 'test'. 'val' tests on the "
                            "validation classes, as cbfinn/maml's --test_set=True did until its commit 617ba8a "
                            "(2017-10-19: 'omniglot test and validation splits were swapped')"),
    "proximal_lam": Field("positive_float", required=False,
                          doc="fine-tune on the loss plus λ/2‖φ − θ‖², θ the trained parameters (iMAML's inner "
                              "problem, whose caption gives λ = 2.0; its released test command uses --lam 0.0, i.e. "
                              "plain steps); without it, the loss alone"),
    "prediction": Field("str", required=False, choices=("particle-mean", "each-particle"),
                        doc="for a run that trains a set of particles (bmaml, emaml), what its test metric is of: "
                            "'particle-mean', the particles' mean output (BMAML's code, bmaml.py:512-522), or "
                            "'each-particle', each particle's own output, the metric then the mean of theirs "
                            "(EMAML's code, emaml.py:143; by Jensen never below the other's MSE); other runs omit it"),
    "predictive_std": Field("positive_float", required=False,
                            doc="for a regression run that trains a set of particles: the std of the Gaussian noise "
                                "its predictive distribution adds to each particle's output (the task's own noise), "
                                "which adds the metrics nll (the query points' mean negative log-likelihood under "
                                "the particles' Gaussian mixture) and coverage90 (the fraction of query targets inside "
                                "that mixture's central 90% interval: 0.9 when calibrated); other runs omit it"),
    "later_lr": Field("positive_float", required=False,
                      doc="the step size of every test-time step after the first (the first takes optimizer.lr); "
                          "without it, all take optimizer.lr (MAML-RL: 0.1 then 0.05 in the paper's App. A.2, 0.5 "
                          "then 0.25 in cbfinn/maml_rl's test_maml_point.py)"),
    "lr_search": Field({
        "candidates": Field("positive_float_list"),
        "tasks": Field("positive_int"),
        "seed": Field("seed"),
    }, required=False, doc="pick the fine-tuning lr from candidates on separately seeded validation tasks "
                           "(the MAML paper tuned the baselines' step size automatically)"),
}

# A claim about compute rather than accuracy (iMAML's memory figure): each run trains `iterations` meta-iterations
# from its initial parameters and measures them. An evaluation with a `measure` field is one of
# these; without it, it is the episodic EVALUATION above.
RESOURCES = {
    "measure": Field("str", choices=("training-step",),
                     doc="'training-step': the memory and the seconds of the run's meta-iterations from its initial "
                         "parameters, as the metrics memory_mib (the first iteration's) and seconds (the mean of the "
                         "others)"),
    "memory": Field("str", choices=("tensor-peak",),
                    doc="'tensor-peak': the peak of the bytes held by the tensors the iteration allocates, each "
                        "counted from its allocation until it is freed (a TorchDispatchMode watching every operator's "
                        "outputs), on whatever device: what the computation needs, without the tensors that existed "
                        "before it (the parameters, the tasks), the allocator's caching or the libraries; exact and "
                        "the same on every run"),
    "interval": Field("str", choices=tuple(INTERVALS), doc="the ± of the mean seconds per iteration"),
}
RESOURCE_METRICS = ("memory_mib", "seconds")


def metric_bases(loss: str, evaluation: dict) -> tuple[str, ...]:
    """The metrics an episodic evaluation measures after each step count (before any suffix): a regression's mse,
    with nll and coverage90 when it has a predictive_std; a classification's loss and accuracy; a policy's return."""
    if loss == "return":  # a policy: the mean return of its trajectories
        return ("return",)
    if loss != "mse":
        return ("loss", "accuracy")
    return ("mse", "nll", "coverage90") if "predictive_std" in evaluation else ("mse",)


def measures_resources(evaluation: dict) -> bool:
    """Whether an evaluation (as written, or merged) is a resource measurement rather than an episodic one."""
    return "measure" in (evaluation or {})


def evaluation_schema(evaluation: dict) -> dict:
    return RESOURCES if measures_resources(evaluation) else EVALUATION


# the evaluation fields a learning-curve point reads: a training that records a curve depends on these alone (one that
# validates for model selection, on these and the selection's VALIDATION_FIELDS)
CURVE_FIELDS = ("during_training", "shots", "queries", "steps", "optimizer", "batch_size", "batch_norm",
                "optimizer_state", "frozen_layers", "proximal_lam")


def check_evaluation(config: dict, where: str, model: dict, model_kind):
    """Cross-field checks of an evaluation against itself and the claim's (validated) model, whose kind module
    says whether it has batch norm and how many conv blocks (a resource measurement has nothing to check)."""
    if measures_resources(config):
        return
    has_batch_norm, blocks = model_kind.has_batch_norm(model), model_kind.conv_blocks(model)
    if "frozen_layers" in config:
        if not blocks:
            raise ManifestError(f"{where}.frozen_layers: freezing conv blocks needs a conv model, not "
                                f"{model['kind']!r}")
        for i, frozen in enumerate(config["frozen_layers"]):
            if frozen and frozen[-1] > blocks:
                raise ManifestError(f"{where}.frozen_layers[{i}]: the model has conv blocks 1..{blocks}, "
                                    f"not {frozen[-1]}")
    if has_batch_norm and config["batch_norm"] == "none":
        raise ManifestError(f"{where}.batch_norm: the model has batch norm: say 'transductive' or 'non-transductive'")
    if not has_batch_norm and config["batch_norm"] != "none":
        raise ManifestError(f"{where}.batch_norm: the model has no batch norm, so this must be 'none'")
    if selects_by_validation(config) and config["selection"]["seed"] == config["seed"]:
        raise ManifestError(f"{where}.selection.seed: must differ from the test tasks' seed (no selection on test "
                            "tasks)")
    if config["selection"]["rule"] == "top-k-ensemble" and "lr_search" in config:
        raise ManifestError(f"{where}.lr_search: the lr search fine-tunes one model, not an ensemble")
    if "lr_search" in config and config["lr_search"]["seed"] == config["seed"]:
        raise ManifestError(f"{where}.lr_search.seed: must differ from the test tasks' seed (no tuning on test tasks)")
    if sorted(set(config["steps"])) != config["steps"]:
        raise ManifestError(f"{where}.steps: expected increasing step counts, got {config['steps']}")


def modes_and_suffixes(batch_norm) -> list[tuple[str, str]]:
    return [(batch_norm, "")] if isinstance(batch_norm, str) else [(m, f"/{m}") for m in batch_norm]


def frozen_sets_and_suffixes(config) -> list[tuple[tuple[int, ...], str]]:
    """(frozen conv blocks, metric suffix) for each fine-tuning of a test task: one with nothing frozen and no
    suffix when the evaluation has no frozen_layers."""
    if "frozen_layers" not in config:
        return [((), "")]
    return [(tuple(blocks), "/frozen-" + ("-".join(map(str, blocks)) or "none")) for blocks in config["frozen_layers"]]


def metric_suffixes(config) -> list[str]:
    """The suffixes of an evaluation's metric names, the primary one first: the batch-norm mode, then the frozen
    blocks (accuracy@10/transductive/frozen-1-2)."""
    return [mode + frozen for _, mode in modes_and_suffixes(config["batch_norm"])
            for _, frozen in frozen_sets_and_suffixes(config)]


def first_frozen_set_only(config) -> dict:
    """The evaluation with only its first set of frozen blocks: what a learning-curve point and the lr search
    fine-tune (they score the primary metric alone, so the other sets would be fine-tuned for nothing)."""
    return dict(config, frozen_layers=config["frozen_layers"][:1]) if "frozen_layers" in config else config

"""benchmarks.yaml: papers and claims, validated on load. Profiles override only what they name.

A claim's `paper` profile is the claim as written; every other profile (`smoke` at least) is a partial mapping
merged into it. Each profile is validated in full, so a bad override is reported like a bad field.
"""
from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from suite.protocol.components import algorithms, families, model_kinds
from suite.protocol.fields import (CURVE_FIELDS, RESOURCE_METRICS, VALIDATION_FIELDS, check_evaluation,
                                   evaluation_schema, measures_resources, metric_bases, metric_suffixes,
                                   selects_by_validation)
from suite.protocol.folders import FOLDERS, folder
from suite.protocol.schema import CHECKS, Field, ManifestError, check_mapping, expand_braces, validate

PAPER = "paper"
REQUIRED_PROFILES = ("smoke",)

PAPER_SCHEMA = {
    "title": Field("str"),
    "authors": Field("str_list"),
    "year": Field("positive_int"),
    "venue": Field("str", required=False),
    "arxiv": Field(lambda v, w: _match(v, w, r"\d{4}\.\d{4,5}", "an arXiv id like 1703.03400")),
    "arxiv_version": Field(lambda v, w: _match(v, w, r"v\d+", "an arXiv version like v3"),
                           doc="the version whose numbers the claims quote"),
}

INTERVAL_KINDS = ("ci95-episodes", "std-seeds", "unknown", "none")
PUBLISHED_SCHEMA = {
    "run": Field("str"),
    "metric": Field("str", doc="e.g. mse@1 or accuracy@3"),
    "row": Field("str", doc="the row of the paper's table"),
    "column": Field("str", doc="the column of the paper's table"),
    "value": Field("float"),
    "interval": Field("positive_float", required=False, doc="the published ± half-width"),
    "interval_n": Field("positive_int", required=False, doc="seeds the published std is over (std-seeds)"),
    "interval_kind": Field("str", choices=INTERVAL_KINDS,
                           doc="what the ± means: 95% CI over episodes, std over seeds, unknown, or none"),
    "tolerance": Field({
        "relative": Field("positive_float", required=False),
        "absolute": Field("positive_float", required=False),
        "reason": Field("str"),
    }, required=False, doc="how far off still counts as reproduced, with its reason"),
    "source": Field("str", doc="where in the paper the number is printed"),
}

# A number the paper's table prints beside the claim's own that the claim does not run (a baseline copied from
# another paper, a variant not built): shown in the report as printed, never judged.
PRINTED_SCHEMA = {
    "row": Field("str", doc="the row of the paper's table"),
    "column": Field("str", doc="the column of the paper's table"),
    "value": Field("float"),
    "interval": Field("positive_float", required=False, doc="the printed ± half-width"),
    "source": Field("str", doc="where it is printed (and where the paper took it from)"),
    "not_run": Field("str", doc="why this claim does not run it (another claim does; the method is not built; ...)"),
}

RELATION_KINDS = ("less", "greater", "at_most", "at_least", "nondecreasing", "nonincreasing")
RELATION_SCHEMA = {
    "statement": Field("str"),
    "source": Field("str"),
    "kind": Field("str", choices=RELATION_KINDS),
    "left": Field("str_list", required=False, doc="runs on the left of a pairwise relation"),
    "right": Field("str_list", required=False, doc="runs on the right of a pairwise relation"),
    "runs": Field("str_list", required=False, doc="runs in order, for nondecreasing / nonincreasing"),
    "metrics": Field("str_list", doc="metrics compared, e.g. ['mse@{1..10}']"),
    "right_metrics": Field("str_list", required=False,
                           doc="compare each left run's metrics[i] with right_metrics[i] of the same run "
                               "(e.g. non-transductive vs transductive accuracy); then 'right' is not given"),
    "factor": Field("positive_float", required=False,
                    doc="compare the left value with this multiple of the right one (a pairwise relation; e.g. "
                        "MAML's memory at 100 inner steps at least 20 times its memory at 1)"),
    "margin": Field("nonnegative_float"),
    "margin_reason": Field("str"),
}

EXECUTION_SCHEMA = {
    "checkpoint_every": Field("positive_int", doc="iterations between checkpoints"),
    "log_every": Field("positive_int", doc="iterations between learning-curve points"),
    "eval_chunk": Field("positive_int", doc="test tasks evaluated at once (memory only)"),
}

CLAIM_KEYS = ("paper", "where", "statement", "task", "model", "seeds", "seeds_reason", "runs", "evaluation",
              "expectations", "notes", "execution", "profiles", "figures", "sensitivity")

DIVERGENCE_SCHEMA = {
    "loss_above": Field("positive_float", required=False,
                        doc="a test task whose query loss (mse, or the cross-entropy of a classification task) "
                            "after a step count is above this, or not finite, diverged at that step; without it, "
                            "only non-finite losses count"),
    "reason": Field("str", doc="why this bound (or why non-finite alone)"),
}

# A protocol choice the paper leaves open, or on which its text and its code disagree: the runs it applies to,
# measured again with `changes` merged into them. A variant whose changes leave training alone (evaluation
# fields only) is evaluated on the runs' trained checkpoints; one that changes training retrains, on request.
SENSITIVITY_SCHEMA = {
    "question": Field("str", doc="the protocol choice in question, and the alternative this variant takes"),
    "source": Field("str", doc="where the alternative comes from (the paper's text, its code, a re-implementation)"),
    "runs": Field("str_list", doc="the runs it changes; the claim's other runs keep their results"),
    "changes": Field(check_mapping, doc="merged into each of those runs, as a run's own fields: hyperparameters, "
                                        "task or evaluation overrides"),
    "published": Field(lambda v, w: _list_of_mappings(v, w, PUBLISHED_SCHEMA), required=False,
                       doc="numbers published for the variant's own protocol (another paper's table), as the "
                           "claim's expectations.published: its runs are judged against these instead of the "
                           "claim's, and it then says nothing about whether the claim's numbers reproduce"),
    "judged_at": Field(check_mapping, required=False,
                       doc="{metric: metric}: the claim's published numbers about its runs are judged at the second "
                           "metric instead of the first, where the variant's protocol reports another (cbfinn/maml's "
                           "10 test-time steps: {accuracy@5: accuracy@10}); relations keep the claim's metrics"),
}

FIGURE_SCHEMA = {
    "title": Field("str"),
    "metric": Field("str", doc="the metric plotted, e.g. accuracy@5; with `steps`, its name alone, e.g. return"),
    "x_label": Field("str"),
    "series": Field(check_mapping, doc="curve label -> {run: x value}, as the paper's figure lays it out; with "
                                       "`steps`, curve label -> run"),
    "steps": Field("step_list", required=False,
                   doc="plot each series' run's metric after each of these fine-tuning steps against the step (the "
                       "MAML paper's Figures 3 and 4: the metric against gradient steps)"),
}
OVERRIDABLE = ("task", "model", "seeds", "runs", "evaluation", "execution", "sensitivity")


def check_name(name, where):
    CHECKS["name"](name, where)


def _match(v, where, pattern, what):
    if not isinstance(v, str) or not re.fullmatch(pattern, v):
        raise ManifestError(f"{where}: expected {what}, got {v!r}")
    return v


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys (PyYAML keeps the last one silently)."""


def _construct_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` may be overridden by the keys beside it
            continue
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def deep_merge(base: dict, override: dict) -> dict:
    """base with override's fields merged in, mappings field by field; a field overridden with null is removed
    (e.g. an ensemble's k, where a variant selects one model)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


RUN_OVERRIDES = ("task", "model", "evaluation")


def hyperparameters(run: dict) -> dict:
    """A run's algorithm hyperparameters: everything but its algorithm name and its overrides."""
    return {k: v for k, v in run.items() if k not in ("algorithm", *RUN_OVERRIDES)}


def config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


@dataclass
class RunConfig:
    """Everything one training + evaluation depends on; `hashed` is what the config hash covers."""

    claim: str
    profile: str
    run: str
    seed: int
    task: dict
    model: dict
    algorithm: str
    hyperparameters: dict
    evaluation: dict
    execution: dict
    variant: str | None = None  # a sensitivity variant of run `run` (see SENSITIVITY_SCHEMA)
    retrains: bool = False  # a variant whose training differs from its run's

    @property
    def label(self) -> str:
        """'claim/run seed N', or 'claim/run~variant seed N' for a sensitivity variant (as its curve file is named)."""
        return f"{self.claim}/{self.run}" + (f"~{self.variant}" if self.variant else "") + f" seed {self.seed}"

    @property
    def hashed(self) -> dict:
        """The configuration the hash covers. Model selection {rule: last} is left out of it: every result made
        before `selection` existed evaluated the last model, so their hashes (and results) stay current."""
        evaluation = self.evaluation
        if evaluation.get("selection") == {"rule": "last"}:
            evaluation = {k: v for k, v in evaluation.items() if k != "selection"}
        return {"task": self.task, "model": self.model, "algorithm": self.algorithm,
                "hyperparameters": self.hyperparameters, "evaluation": evaluation, "seed": self.seed}

    @property
    def hash(self) -> str:
        return config_hash(self.hashed)

    @property
    def training(self) -> dict:
        """What the trained model depends on (the evaluation aside): a new evaluation reuses the training."""
        return {k: v for k, v in self.hashed.items() if k != "evaluation"}

    @property
    def training_spec(self) -> dict:
        """The training configuration, with the evaluation fields a learning curve on test tasks during training
        reads when it has one (what curve_point reads, not the final evaluation's tasks or seed), and the model
        selection when it validates during training (the candidates it keeps are part of the training)."""
        spec = dict(self.training)
        validates = selects_by_validation(self.evaluation)
        if self.evaluation.get("during_training") or validates:
            spec["evaluation"] = {k: v for k, v in self.evaluation.items() if k in CURVE_FIELDS}
            if validates:  # the validations, not the rule: one training serves the best model and the top k
                spec["evaluation"]["selection"] = {k: self.evaluation["selection"][k] for k in VALIDATION_FIELDS}
        return spec

    @property
    def training_key(self) -> str:
        """training_spec as a hash. Equal keys: one trained model serves both configurations."""
        return config_hash(self.training_spec)

    @property
    def shares_training(self) -> bool:
        """Whether its trained model may serve another run of the same training_key. A run that measures resources
        measures its own training, so it shares none."""
        return not measures_resources(self.evaluation)

    def to_json(self) -> dict:
        return {"claim": self.claim, "profile": self.profile, "run": self.run,
                **({"variant": self.variant} if self.variant else {}), **self.hashed,
                "execution": self.execution, "config_hash": self.hash}


def shared_trainings(configs: list[RunConfig]) -> list[list[RunConfig]]:
    """The configurations grouped by the training they need, each group in the order given and the groups in the order
    of their first: configurations of one claim, profile and seed with the same training_key train once, the first of
    the group, and the others are evaluated on its model. Reptile's 1- and 5-shot runs are such twins: it trains
    both with the same shots (10 in Table 3 of arXiv 1803.02999v3), and only the test tasks' shots differ."""
    groups: dict = {}
    for i, cfg in enumerate(configs):
        key = (cfg.claim, cfg.profile, cfg.seed, cfg.training_key) if cfg.shares_training else i
        groups.setdefault(key, []).append(cfg)
    return list(groups.values())


@dataclass
class Claim:
    id: str
    paper: dict
    profiles: dict  # profile name -> validated, merged claim body

    def body(self, profile: str = PAPER) -> dict:
        if profile not in self.profiles:
            raise ManifestError(f"claim {self.id!r} has no profile {profile!r} (profiles: "
                                f"{', '.join(self.profiles)})")
        return self.profiles[profile]

    def _known_runs(self, body: dict, runs) -> None:
        unknown = sorted(set(runs or ()) - set(body["runs"]))
        if unknown:
            raise ManifestError(f"claim {self.id!r} has no run {unknown[0]!r} (runs: {', '.join(body['runs'])})")

    def run_configs(self, profile: str = PAPER, seeds=None, runs=None) -> list[RunConfig]:
        body = self.body(profile)
        self._known_runs(body, runs)
        return [self.run_config(body, profile, name, run, seed)
                for name, run in body["runs"].items() if not runs or name in runs
                for seed in (seeds if seeds is not None else body["seeds"])]

    def trained_by(self, profile: str = PAPER) -> dict[str, str]:
        """{run: the earlier run whose training it shares (shared_trainings)}, for the runs that train nothing of
        their own; the same for every seed (the seed enters every training alike)."""
        configs = self.run_configs(profile, seeds=self.body(profile)["seeds"][:1])
        return {cfg.run: group[0].run for group in shared_trainings(configs) for cfg in group[1:]}

    def run_config(self, body: dict, profile: str, name: str, run: dict, seed: int) -> RunConfig:
        """One run of a claim body: its task, model and evaluation overrides merged over the claim's."""
        task = deep_merge(body["task"], run.get("task", {}))
        model = deep_merge(body["model"], run.get("model", {}))
        evaluation = deep_merge(body["evaluation"], run.get("evaluation", {}))
        return RunConfig(self.id, profile, name, seed, task, model, run["algorithm"], hyperparameters(run),
                         evaluation, body["execution"])

    def variant_configs(self, profile: str = PAPER, seeds=None, variants=None, runs=None) -> list[RunConfig]:
        """The runs of the claim's sensitivity variants (all, or those named), each with its changes merged in;
        `retrains` tells a variant that needs its own training from one evaluated on its run's trained model."""
        body = self.body(profile)
        unknown = sorted(set(variants or ()) - set(body["sensitivity"]))
        if unknown:
            raise ManifestError(f"claim {self.id!r} has no sensitivity variant {unknown[0]!r} (variants: "
                                f"{', '.join(body['sensitivity']) or 'none'})")
        self._known_runs(body, runs)
        out = []
        for name, variant in body["sensitivity"].items():
            if variants and name not in variants:
                continue
            for run in variant["runs"]:
                if runs and run not in runs:
                    continue
                changed = deep_merge(body["runs"][run], variant["changes"])
                for seed in (seeds if seeds is not None else body["seeds"]):
                    base = self.run_config(body, profile, run, body["runs"][run], seed)
                    cfg = self.run_config(body, profile, run, changed, seed)
                    cfg.variant, cfg.retrains = name, cfg.training_key != base.training_key
                    out.append(cfg)
        return out


@dataclass
class Manifest:
    path: Path
    papers: dict
    claims: dict
    bench: dict  # claim id -> runs timed by `suite bench` on that claim's task and model
    executor: dict  # the cluster executors' settings: {"slurm": SLURM_SCHEMA's fields} (those given)

    def shared_across_claims(self, profile: str = PAPER) -> dict[tuple[str, str, int], list[str]]:
        """{(claim, run, seed): the other claims' runs, as `claim/run`, that need the same training (the same
        training_key: omniglot-maml's n5-k5 and freeze-layer-omniglot's n5-k5, say)}, for the runs that have such.
        One training serves them all, whichever claim trains it first (suite.training.parking.restore_twin)."""
        groups: dict = {}
        for claim in self.claims.values():
            for cfg in claim.run_configs(profile) if profile in claim.profiles else ():
                if cfg.shares_training:
                    groups.setdefault((cfg.seed, cfg.training_key), []).append(cfg)
        return {(c.claim, c.run, c.seed): others for group in groups.values() for c in group
                if (others := [f"{o.claim}/{o.run}" for o in group if o.claim != c.claim])}

    def claim(self, claim_id: str) -> Claim:
        if claim_id not in self.claims:
            raise ManifestError(f"{self.path}: no claim {claim_id!r} (claims: {', '.join(self.claims) or 'none'})")
        return self.claims[claim_id]


def load_manifest(path: str | Path | None = None) -> Manifest:
    """The manifest at `path` (else $SUITE_MANIFEST, else benchmarks.yaml), validated."""
    path = folder("manifest", path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found (pass --manifest PATH or set {FOLDERS['manifest'][0]})")
    try:
        raw = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = "; ".join(str(x) for x in (getattr(e, "context", None), getattr(e, "problem", None)) if x) or str(e)
        raise ManifestError(f"{path}: malformed YAML{where}: {what}") from None
    return parse_manifest(raw, path)


def parse_manifest(raw, path: Path) -> Manifest:
    try:
        check_mapping(raw, "top level")
        validate(raw, {"version": Field("int", choices=(1,)), "papers": Field(check_mapping),
                       "claims": Field(check_mapping), "bench": Field(check_mapping, required=False),
                       "datasets": Field("str_list", doc="datasets the claims read, one fetch stage each"),
                       "executor": Field(check_mapping, required=False)}, "")
        executor = validate(raw.get("executor") or {}, {"slurm": Field(_slurm_partial, required=False)},
                            "executor")
        papers = {key: validate(paper, PAPER_SCHEMA, f"papers.{key}") for key, paper in raw["papers"].items()}
    except ManifestError as e:
        raise ManifestError(f"{path}: {e}") from None
    claims = {}
    for claim_id, body in raw["claims"].items():
        try:
            claims[claim_id] = parse_claim(claim_id, body, papers)
        except ManifestError as e:
            raise ManifestError(f"{path}: claim {claim_id!r}: {e}") from None
    for claim_id, claim in claims.items():
        family = claim.body()["task"]["family"]
        if family not in raw["datasets"]:
            raise ManifestError(f"{path}: claim {claim_id!r}: task.family: {family!r} is not in the top-level "
                                f"'datasets' list ({', '.join(raw['datasets'])}), so no stage would fetch it")
    bench = {}
    for claim_id, runs in (raw.get("bench") or {}).items():
        try:
            if claim_id not in claims:
                raise ManifestError(f"no claim {claim_id!r} to take the task and model from")
            body = claims[claim_id].body()
            resolved = {}
            for name, run in check_mapping(runs, "runs").items():
                check_mapping(run, f"runs.{name}")
                if "same_as" in run:  # a run of the claim, with the fields given here replacing its own
                    if run["same_as"] not in body["runs"]:
                        raise ManifestError(f"runs.{name}.same_as: the claim has no run {run['same_as']!r}")
                    run = {**body["runs"][run["same_as"]], **{k: v for k, v in run.items() if k != "same_as"}}
                resolved[name] = run
            bench[claim_id] = parse_runs(resolved, "runs", body["evaluation"], body["task"], body["model"])
        except ManifestError as e:
            raise ManifestError(f"{path}: bench {claim_id!r}: {e}") from None
    return Manifest(path, papers, claims, bench, executor)


SLURM_SCHEMA = {
    "partition": Field("str", required=False, doc="the partition (the cluster's default without it)"),
    "time_min": Field("positive_int", doc="a job's time limit, minutes; a job that reaches it is requeued and "
                                          "resumes from its checkpoint (submitit: up to 3 times)"),
    "cpus_per_task": Field("positive_int", doc="CPUs per job (its torch threads)"),
    "gpus_per_node": Field("nonnegative_int", doc="GPUs per job"),
    "mem_gb": Field("positive_int", doc="memory per job, GiB"),
    "array_parallelism": Field("positive_int", doc="jobs of the array running at once"),
}


def _slurm_partial(value, where):
    """The manifest's executor.slurm: any of SLURM_SCHEMA's fields (`--slurm-*` options may give the rest)."""
    check_mapping(value, where)
    return validate(value, {k: Field(f.kind, required=False, doc=f.doc) for k, f in SLURM_SCHEMA.items()}, where)


def slurm_settings(manifest: "Manifest", overrides: dict) -> dict:
    """The Slurm settings a submission uses: the manifest's executor.slurm with the given options over it, all of
    SLURM_SCHEMA's required fields present."""
    merged = {**manifest.executor.get("slurm", {}), **{k: v for k, v in overrides.items() if v is not None}}
    for key, field in SLURM_SCHEMA.items():
        if field.required and key not in merged:
            raise ManifestError(f"{manifest.path}: executor.slurm.{key}: required to submit to Slurm; write it in "
                                f"the manifest's executor section or pass --slurm-{key.replace('_', '-')}")
    return validate(merged, SLURM_SCHEMA, "executor.slurm")


RESERVED_IDS = ("metrics", "plots", "figures")  # folders of results/ that are not claims


def parse_claim(claim_id: str, body, papers: dict) -> Claim:
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", str(claim_id)):
        raise ManifestError("claim ids are lower-case words joined by '-'")
    if claim_id in RESERVED_IDS:
        raise ManifestError(f"{claim_id!r} names a folder of results/; choose another claim id")
    check_mapping(body, "claim")
    unknown = sorted(set(body) - set(CLAIM_KEYS))
    if unknown:
        raise ManifestError(f"unknown field {unknown[0]!r} (known fields: {', '.join(CLAIM_KEYS)})")
    validate({k: body.get(k) for k in ("paper", "where", "statement")},
             {"paper": Field("str"), "where": Field("str"), "statement": Field("str")}, "")
    if body["paper"] not in papers:
        raise ManifestError(f"paper: {body['paper']!r} is not among the manifest's papers "
                            f"({', '.join(papers) or 'none'})")
    overrides = check_mapping(body.get("profiles") or {}, "profiles")
    if PAPER in overrides:
        raise ManifestError(f"profiles.{PAPER}: the paper profile is the claim itself; it takes no overrides")
    for name in REQUIRED_PROFILES:
        if name not in overrides:
            raise ManifestError(f"profiles.{name}: missing required profile (a tiny version of the claim for CI)")
    base = {k: v for k, v in body.items() if k != "profiles"}
    profiles = {PAPER: parse_body(base, where="")}
    for name, override in overrides.items():
        check_name(name, f"profiles.{name}")
        check_mapping(override, f"profiles.{name}")
        for key in override:
            if key not in OVERRIDABLE:
                raise ManifestError(f"profiles.{name}.{key}: a profile may override only "
                                    f"{', '.join(OVERRIDABLE)}")
        try:
            profiles[name] = parse_body(deep_merge(base, override), where="")
        except ManifestError as e:
            raise ManifestError(f"profile {name!r}: {e}") from None
    claim = Claim(claim_id, papers[body["paper"]], profiles)
    check_expectations(profiles[PAPER])
    return claim


def _field(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def parse_component(body: dict, field: str, key: str, components: dict, what: str, schema, where: str) -> dict:
    """The claim's `task` or `model`: its `key` (family, kind) names a component, whose fields validate the rest
    and whose check() makes its cross-field checks."""
    if field not in body:
        raise ManifestError(f"{_field(where, field)}: missing required field")
    value = check_mapping(body[field], _field(where, field))
    name = value.get(key)
    if name not in components:
        raise ManifestError(f"{_field(where, f'{field}.{key}')}: unknown {what} {name!r} "
                            f"(known: {', '.join(components)})")
    out = validate(value, schema(name), _field(where, field))
    components[name].check(out, _field(where, field))
    return out


def parse_body(body: dict, where: str) -> dict:
    out = {k: body[k] for k in ("paper", "where", "statement")}
    out["task"] = parse_component(body, "task", "family", families(), "task family", task_schema, where)
    out["model"] = parse_component(body, "model", "kind", model_kinds(), "model", model_schema, where)
    kind = out["model"]["kind"]

    out.update(validate({k: body.get(k) for k in ("seeds", "seeds_reason")}, {
        "seeds": Field("seed_list"),
        "seeds_reason": Field("str", doc="why this many training seeds: the published ±'s seeds, or what a paper "
                                         "run costs here")}, where))
    out["execution"] = validate(body.get("execution"), EXECUTION_SCHEMA, _field(where, "execution"))
    if out["execution"]["checkpoint_every"] % out["execution"]["log_every"]:
        raise ManifestError(f"{_field(where, 'execution.checkpoint_every')}: must be a multiple of log_every "
                            "(checkpoints fall on learning-curve points, so a resumed run is exact)")
    out["evaluation"] = validate(body.get("evaluation"), evaluation_schema(body.get("evaluation")),
                                 _field(where, "evaluation"))
    check_evaluation(out["evaluation"], _field(where, "evaluation"), out["model"], model_kinds()[kind])

    runs = check_mapping(body.get("runs"), _field(where, "runs"))
    if not runs:
        raise ManifestError(f"{_field(where, 'runs')}: a claim needs at least one run")
    out["runs"] = parse_runs(runs, _field(where, "runs"), out["evaluation"], out["task"], out["model"])
    out["expectations"] = validate(body.get("expectations"), {
        "published": Field(lambda v, w: _list_of_mappings(v, w, PUBLISHED_SCHEMA), required=False),
        "printed": Field(lambda v, w: _list_of_mappings(v, w, PRINTED_SCHEMA), required=False,
                         doc="the other numbers of the paper's table, shown beside the claim's, not run"),
        "relations": Field(lambda v, w: _list_of_mappings(v, w, RELATION_SCHEMA), required=False),
        "divergence": Field(DIVERGENCE_SCHEMA, doc="when a test task's fine-tuning counts as diverged"),
        "reported": Field("str_list", required=False,
                          doc="metrics the report shows for every run with no verdict, beside those the relations "
                              "compare (e.g. calibration), written as a relation's metrics ('mse@{1..10}')"),
    }, _field(where, "expectations"))
    out["sensitivity"] = parse_sensitivity(body.get("sensitivity"), _field(where, "sensitivity"), out)
    out["notes"] = validate({"notes": body.get("notes")}, {"notes": Field("str_list", required=False)},
                            where).get("notes", [])
    out["figures"] = _list_of_mappings(body.get("figures") or [], _field(where, "figures"), FIGURE_SCHEMA)
    for i, fig in enumerate(out["figures"]):
        fw = _field(where, f"figures[{i}]")
        for label, points in fig["series"].items():
            if "steps" in fig:
                if points not in out["runs"]:
                    raise ManifestError(f"{fw}.series.{label}: with steps, a series is one run of this claim, not "
                                        f"{points!r}")
                continue
            check_mapping(points, f"{fw}.series.{label}")
            for run, x in points.items():
                if run not in out["runs"]:
                    raise ManifestError(f"{fw}.series.{label}: no run {run!r} in this claim")
                if not isinstance(x, (int, float)) or isinstance(x, bool):
                    raise ManifestError(f"{fw}.series.{label}.{run}: expected a number (the x value), got {x!r}")
        for label, points in figure_points(fig).items():
            for run, _, metric in points:
                if metric not in metric_names(out, run):
                    raise ManifestError(f"{fw}.metric: {metric!r} is not measured by run {run!r} of the figure")
    return out


def figure_points(fig: dict) -> dict[str, list[tuple[str, float, str]]]:
    """A figure's curves: label -> [(run, x, metric)]: its runs at their x values, or (with `steps`) its run's
    metric after each step, at the step."""
    if "steps" in fig:
        return {label: [(run, s, f"{fig['metric']}@{s}") for s in fig["steps"]] for label, run in fig["series"].items()}
    return {label: [(run, x, fig["metric"]) for run, x in points.items()] for label, points in fig["series"].items()}


def parse_sensitivity(value, where: str, body: dict) -> dict:
    """The claim's sensitivity variants, each checked as the runs it changes would be with its changes merged."""
    variants = check_mapping(value, where)

    def resolved(run):  # what a run's configuration becomes, its overrides merged into the claim's
        return (run["algorithm"], hyperparameters(run), deep_merge(body["task"], run.get("task", {})),
                deep_merge(body["model"], run.get("model", {})),
                deep_merge(body["evaluation"], run.get("evaluation", {})))

    if not variants:
        raise ManifestError(f"{where}: list at least one protocol choice the paper leaves open (or on which its "
                            "text and code disagree)")
    out = {}
    for name, variant in variants.items():
        vw = f"{where}.{name}"
        check_name(name, vw)
        spec = validate(variant, SENSITIVITY_SCHEMA, vw)
        for run in spec["runs"]:
            if run not in body["runs"]:
                raise ManifestError(f"{vw}.runs: no run {run!r} in this claim (runs: {', '.join(body['runs'])})")
            changed = deep_merge(body["runs"][run], spec["changes"])
            if resolved(changed) == resolved(body["runs"][run]):
                raise ManifestError(f"{vw}.changes: changes nothing in run {run!r}")
            parse_runs({run: changed}, f"{vw}.changes (merged into run {run!r})", body["evaluation"], body["task"],
                       body["model"])
        out[name] = spec
    return out


def task_schema(family: str) -> dict[str, Field]:
    return {"family": Field("str", choices=tuple(families()), doc="task family"), **families()[family].FIELDS}


def model_schema(kind: str) -> dict[str, Field]:
    return {"kind": Field("str", choices=tuple(model_kinds()), doc="model kind"), **model_kinds()[kind].FIELDS}


def algorithm_schema(name: str) -> dict[str, Field]:
    return {"algorithm": Field("str", choices=tuple(algorithms())), **algorithms()[name].ARGS}


def parse_runs(runs: dict, where: str, evaluation: dict, task: dict, model: dict) -> dict:
    out = {}
    for name, run in runs.items():
        rw = f"{where}.{name}"
        check_name(name, rw)
        check_mapping(run, rw)
        name_ = run.get("algorithm")
        if name_ not in algorithms():
            raise ManifestError(f"{rw}.algorithm: unknown algorithm {name_!r} (known: {', '.join(algorithms())})")
        algorithm = algorithms()[name_]
        schema = dict(algorithm_schema(name_),
                      evaluation=Field(check_mapping, required=False, doc="overrides of the claim's evaluation"),
                      task=Field(check_mapping, required=False, doc="overrides of the claim's task (e.g. ways)"),
                      model=Field(check_mapping, required=False,
                                  doc="overrides of the claim's model (a baseline's own network, e.g. MAML-RL's "
                                      "random policy)"))
        parsed = validate(run, schema, rw)
        run_task = overridden(task, parsed, "task", "family", families(), task_schema, rw)
        run_model = overridden(model, parsed, "model", "kind", model_kinds(), model_schema, rw)
        hp = hyperparameters(parsed)
        algorithm.check(hp, run_task, families()[task["family"]], rw)
        run_evaluation = evaluation
        if "evaluation" in parsed:
            merged = deep_merge(evaluation, parsed["evaluation"])
            run_evaluation = validate(merged, evaluation_schema(merged), f"{rw}.evaluation")
            check_evaluation(run_evaluation, f"{rw}.evaluation", run_model, model_kinds()[model["kind"]])
        check_run_protocol(run_task, run_model, algorithm, hp, run_evaluation, rw)
        algorithm.check_evaluation(hp, run_evaluation, f"{rw}.evaluation")
        out[name] = parsed
    return out


def overridden(base: dict, run: dict, field: str, key: str, components: dict, schema, where: str) -> dict:
    """The claim's `task` or `model` with the run's overrides of it merged in, validated and checked as the claim's
    is; its component (`key`: family, kind) is the claim's."""
    if field not in run:
        return base
    if key in run[field]:
        raise ManifestError(f"{where}.{field}.{key}: a run cannot change the claim's {field} {key}")
    merged = validate(deep_merge(base, run[field]), schema(base[key]), f"{where}.{field}")
    components[base[key]].check(merged, f"{where}.{field}")
    return merged


def check_run_protocol(task: dict, model: dict, algorithm, hp: dict, evaluation: dict, where: str):
    """Cross-field checks that would otherwise fail only after training: what the data and batches allow."""
    family = families()[task["family"]]
    _, shots, queries = algorithm.task_shape(hp)
    if measures_resources(evaluation):  # it trains, and draws no test task
        if hp["iterations"] < 2:
            raise ManifestError(f"{where}.iterations: a resource measurement times the iterations after the first, "
                                f"so it needs at least 2 (got {hp['iterations']})")
        family.check_protocol(task, model, [("train", shots, queries)], where)
        return
    uses = [("train", shots, queries), ("test", evaluation["shots"], evaluation["queries"])]
    if "lr_search" in evaluation or selects_by_validation(evaluation):
        uses.append(("val", evaluation["shots"], evaluation["queries"]))
    family.check_protocol(task, model, uses, where)
    if "test_tasks" in evaluation:
        codes = getattr(family, "CODE_TEST_TASKS", {})
        if evaluation["test_tasks"] not in codes:
            raise ManifestError(f"{where}.evaluation.test_tasks: the {task['family']} family cannot draw test tasks "
                                f"as {evaluation['test_tasks']!r} (it knows: {', '.join(codes) or 'none'})")
        codes[evaluation["test_tasks"]](evaluation, f"{where}.evaluation")
    limit = algorithm.finetune_steps_limit(hp)
    if limit is not None and evaluation["steps"][-1] > limit:
        raise ManifestError(f"{where}.evaluation.steps: this run's trained model has per-step parameters for "
                            f"{limit} inner steps, so it fine-tunes at most {limit} (got {evaluation['steps'][-1]})")
    support = family.support_points(task, evaluation["shots"])
    if evaluation["batch_size"] != "full" and evaluation["batch_size"] > support:
        raise ManifestError(f"{where}: evaluation.batch_size {evaluation['batch_size']} is more than the {support} "
                            "support points of a test task")
    if evaluation["optimizer_state"] == "from-training" and not (
            algorithm.carries_inner_state(hp) and evaluation["optimizer"]["name"] == "adam-tf"):
        raise ManifestError(f"{where}.evaluation.optimizer_state: 'from-training' needs a run whose inner Adam state "
                            "is carried (reptile, inner_optimizer_state: carried) and an adam-tf evaluation")


def _list_of_mappings(value, where, schema):
    if not isinstance(value, list):
        raise ManifestError(f"{where}: expected a list, got {value!r}")
    return [validate(item, schema, f"{where}[{i}]") for i, item in enumerate(value)]


def metric_names(body: dict, run: str) -> set[str]:
    """The metrics a run's evaluation produces: names like mse@5, accuracy@50/transductive when the evaluation
    measures several batch-norm modes, accuracy@10/frozen-1-2 when it freezes sets of conv blocks (the two
    suffixes in that order)."""
    family = families()[body["task"]["family"]]
    evaluation = deep_merge(body["evaluation"], body["runs"][run].get("evaluation", {}))
    if measures_resources(evaluation):
        return set(RESOURCE_METRICS)
    names = metric_bases(family.LOSS, evaluation)
    return {f"{n}@{s}{x}" for n in names for s in evaluation["steps"] for x in metric_suffixes(evaluation)}


def expand_metrics(patterns: list[str]) -> list[str]:
    return [m for p in patterns for m in expand_braces(p)]


def check_published(body: dict, published: list[dict], at: str, runs=None):
    """Published numbers (`at`: where they are in the claim) name a run of `runs` (default: the claim's) whose
    evaluation measures their metric, and explain their interval."""
    runs = list(runs or body["runs"])
    for i, e in enumerate(published):
        where = f"{at}[{i}]"
        if e["run"] not in runs:
            raise ManifestError(f"{where}.run: no run {e['run']!r} in this claim (runs: {', '.join(runs)})")
        metrics = metric_names(body, e["run"])
        if e["metric"] not in metrics:
            raise ManifestError(f"{where}.metric: {e['metric']!r} is not measured by the evaluation "
                                f"(measured: {', '.join(sorted(metrics))})")
        kind, tol = e["interval_kind"], e.get("tolerance")
        if kind == "none" and "interval" in e:
            raise ManifestError(f"{where}.interval: interval_kind is 'none' but an interval is given")
        if kind != "none" and "interval" not in e:
            raise ManifestError(f"{where}.interval: required when interval_kind is {kind!r}")
        if kind == "std-seeds" and "interval_n" not in e:
            raise ManifestError(f"{where}.interval_n: required when interval_kind is 'std-seeds' (how many seeds)")
        if kind == "std-seeds" and len(body["seeds"]) < e["interval_n"]:
            raise ManifestError(f"{where}: the published ± is a std over {e['interval_n']} seeds, so the claim runs "
                                f"at least that many (seeds: {body['seeds']})")
        if kind in ("none", "unknown") and tol is None:
            raise ManifestError(f"{where}.tolerance: required when the published interval is {kind!r} "
                                "(say how far off still counts as reproduced, and why)")
        if tol is not None and ("relative" in tol) == ("absolute" in tol):
            raise ManifestError(f"{where}.tolerance: give exactly one of 'relative' or 'absolute'")


def variant_published(expectations: dict, variant: dict) -> list[dict]:
    """The published numbers a sensitivity variant is judged against: its own (`published`), else the claim's
    (`expectations`), those about its runs at its `judged_at` metric in place of the claim's."""
    if "published" in variant:
        return variant["published"]
    at = variant.get("judged_at", {})
    return [{**e, "metric": at.get(e["metric"], e["metric"])} if e["run"] in variant["runs"] else e
            for e in expectations.get("published", [])]


def check_expectations(body: dict):
    """Cross-field checks of the paper profile's expectations: runs and metrics exist, intervals are explained."""
    runs = body["runs"]
    check_published(body, body["expectations"].get("published", []), "expectations.published")
    for name, variant in body.get("sensitivity", {}).items():
        changed = {**body, "runs": {**runs, **{run: deep_merge(runs[run], variant["changes"])
                                               for run in variant["runs"]}}}
        at, where = variant.get("judged_at", {}), f"sensitivity.{name}"
        if at and "published" in variant:
            raise ManifestError(f"{where}.judged_at: a variant judged against its own published numbers names their "
                                "metrics there; give 'published' or 'judged_at', not both")
        claimed = {e["metric"] for e in body["expectations"].get("published", []) if e["run"] in variant["runs"]}
        for metric, instead in at.items():
            if metric not in claimed or not isinstance(instead, str):
                raise ManifestError(f"{where}.judged_at: {metric!r} must be the metric of a published number about "
                                    f"its runs (those: {', '.join(sorted(claimed)) or 'none'}), mapped to a metric")
        mine = variant.get("published") or [e for e in variant_published(body["expectations"], variant)
                                             if e["run"] in variant["runs"]]
        check_published(changed, mine, f"{where}.{'judged_at' if at else 'published'}", variant["runs"])
    for m in expand_metrics(body["expectations"].get("reported", [])):
        for run in runs:
            if m not in metric_names(body, run):
                raise ManifestError(f"expectations.reported: {m!r} is not measured by run {run!r}'s evaluation "
                                    f"(measured: {', '.join(sorted(metric_names(body, run)))})")
    for i, r in enumerate(body["expectations"].get("relations", [])):
        where = f"expectations.relations[{i}]"
        pairwise = r["kind"] in ("less", "greater", "at_most", "at_least")
        if pairwise and "right_metrics" in r:
            needed, unwanted = ("left",), ("runs", "right")
            if len(expand_metrics(r["right_metrics"])) != len(expand_metrics(r["metrics"])):
                raise ManifestError(f"{where}.right_metrics: must name as many metrics as 'metrics'")
        elif pairwise:
            needed, unwanted = ("left", "right"), ("runs",)
        else:
            needed, unwanted = ("runs",), ("left", "right", "right_metrics", "factor")
        for key in needed:
            if key not in r:
                raise ManifestError(f"{where}.{key}: required for a {r['kind']!r} relation")
        for key in unwanted:
            if key in r:
                raise ManifestError(f"{where}.{key}: not used by a {r['kind']!r} relation")
        for key in ("left", "right", "runs"):
            for run in r.get(key, []):
                if run not in runs:
                    raise ManifestError(f"{where}.{key}: no run {run!r} in this claim (runs: {', '.join(runs)})")
        metrics = set.intersection(*(metric_names(body, run) for key in ("left", "right", "runs")
                                     for run in r.get(key, [])))
        for m in expand_metrics(r["metrics"]) + expand_metrics(r.get("right_metrics", [])):
            if m not in metrics:
                raise ManifestError(f"{where}.metrics: {m!r} is not measured by the evaluation "
                                    f"(measured: {', '.join(sorted(metrics))})")

"""The `suite` command line."""
from __future__ import annotations

import functools
import os
import time
from pathlib import Path

import click
import yaml

from suite.data import DataError
from suite.protocol import PAPER, ManifestError, load_manifest
from suite.protocol.components import families
from suite.protocol.folders import FOLDERS, folder
from suite.results.store import ResultsError
from suite.training.layout import RunError
from suite.training.cluster import EXECUTORS
from suite.training.paths import PATHS


def _errors_are_clear(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (ManifestError, RunError, DataError, ResultsError) as e:
            raise click.ClickException(str(e)) from None
    return wrapper


@click.group()
@click.option("--manifest", "manifest_path", envvar=FOLDERS["manifest"][0], default=FOLDERS["manifest"][1],
              show_default=True, type=click.Path(dir_okay=False),
              help=f"Manifest of papers and claims (or set {FOLDERS['manifest'][0]}).")
@click.option("--results", "results_path", envvar=FOLDERS["results"][0], default=FOLDERS["results"][1],
              show_default=True, type=click.Path(file_okay=False),
              help=f"Results folder (or set {FOLDERS['results'][0]}).")
@click.option("--data", "data_path", envvar=FOLDERS["data"][0], default=FOLDERS["data"][1], show_default=True,
              type=click.Path(file_okay=False), help=f"Folder of fetched datasets (or set {FOLDERS['data'][0]}).")
@click.pass_context
def main(ctx, manifest_path, results_path, data_path):
    """Re-run published MAML-family claims and compare them with the papers' numbers."""
    ctx.obj = {"manifest": folder("manifest", manifest_path), "results": folder("results", results_path),
               "data": folder("data", data_path)}


def _manifest(ctx):
    return load_manifest(ctx.obj["manifest"])


def _reports(manifest, root: Path, claim_ids=None, records=None):
    """The claims' reports from what the results folder holds: results (`records` when already read), the
    trainings in progress and the recorded costs."""
    from suite.results.costs import load_costs
    from suite.results.store import load_progress, load_results
    from suite.verdicts.judge import build_reports

    return build_reports(manifest, load_results(root) if records is None else records, claim_ids,
                         load_progress(root), load_costs(root))


_time_limit_option = click.option(
    "--time-limit", envvar="SUITE_TIME_LIMIT", type=click.FloatRange(min=0, min_open=True),
    help="Minutes: then every training checkpoints at its next iteration and stops, and the command reports what "
         "finished (the same command resumes the rest); or set SUITE_TIME_LIMIT.")


def _start_clock(time_limit: float | None):
    """Set the time at which trainings stop (STOP_AT, read here and in worker processes), if there is a limit."""
    from suite.training.loop import STOP_AT

    if time_limit:
        os.environ[STOP_AT] = str(time.time() + 60 * time_limit)


def _out_of_time(time_limit: float | None) -> bool:
    from suite.training.loop import STOP_AT

    return bool(time_limit) and time.time() >= float(os.environ[STOP_AT])


@main.command()
@click.option("--claim", "claims", multiple=True, help="Claim id (repeatable).")
@click.option("--all", "all_claims", is_flag=True, help="Every claim of the manifest (the whole table).")
@click.option("--profile", default=PAPER, show_default=True, help="paper (the published protocol) or smoke (tiny).")
@click.option("--device", envvar="SUITE_DEVICE", default="auto", show_default=True,
              help="auto, cpu, cuda or cuda:N (or set SUITE_DEVICE).")
@click.option("--seed", "seeds", type=int, multiple=True, help="Run these seeds instead of the claim's.")
@click.option("--run", "runs", multiple=True, help="Only these runs of the claim (repeatable).")
@click.option("--overwrite", is_flag=True, help="Replace results or checkpoints from another configuration.")
@click.option("--jobs", envvar="SUITE_JOBS", default=1, show_default=True, type=click.IntRange(min=1),
              help="Train this many runs at once, in worker processes that split the CPU threads (or share the "
                   "GPU); or set SUITE_JOBS.")
@click.option("--path", "path", envvar="SUITE_PATH", default="auto", show_default=True,
              type=click.Choice(["auto", *PATHS]),
              help="How a meta-batch's tasks are computed: one vmap, a loop, grouped into one batched computation, "
                   "or auto (the fastest for the device and task shape); the paths round differently, a result "
                   "records its own (or set SUITE_PATH).")
@click.option("--no-sensitivity", is_flag=True,
              help="Do not evaluate the claim's evaluation-only sensitivity variants after its runs.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@_time_limit_option
@click.option("--prefetch", envvar="SUITE_PREFETCH", default=0, show_default=True, type=click.IntRange(min=0),
              help="Worker processes that draw each training's next meta-batches ahead of its step (the same "
                   "tasks: iteration i's come from its own seed); worth it on a GPU, which otherwise waits for the "
                   "CPU to draw them; 0 draws them in the training's process (or set SUITE_PREFETCH).")
@click.option("--cuda-graph", is_flag=True, envvar="SUITE_CUDA_GRAPH",
              help="On a GPU, capture each training's meta-iteration as one CUDA graph and replay it (MAML, "
                   "first-order MAML, ANIL; others run eagerly): rounds differently from an eager GPU run, which "
                   "the result's provenance records (or set SUITE_CUDA_GRAPH=1).")
@click.option("--executor", envvar="SUITE_EXECUTOR", default="inline", show_default=True,
              type=click.Choice(EXECUTORS),
              help="Where the runs train: inline (here, --jobs at a time), or as one submitit job array: slurm, "
                   "local (subprocesses here) or debug (here, through submitit); this process waits, then writes "
                   "the metrics and the report (or set SUITE_EXECUTOR).")
@click.option("--slurm-partition", envvar="SUITE_SLURM_PARTITION",
              help="Slurm partition, over the manifest's executor.slurm (each --slurm-* option also reads "
                   "SUITE_SLURM_<NAME>, e.g. SUITE_SLURM_TIME_MIN).")
@click.option("--slurm-time-min", envvar="SUITE_SLURM_TIME_MIN", type=click.IntRange(min=1),
              help="A job's time limit, minutes.")
@click.option("--slurm-cpus-per-task", envvar="SUITE_SLURM_CPUS_PER_TASK", type=click.IntRange(min=1),
              help="CPUs per job.")
@click.option("--slurm-gpus-per-node", envvar="SUITE_SLURM_GPUS_PER_NODE", type=click.IntRange(min=0),
              help="GPUs per job.")
@click.option("--slurm-mem-gb", envvar="SUITE_SLURM_MEM_GB", type=click.IntRange(min=1), help="Memory per job, GiB.")
@click.option("--slurm-array-parallelism", envvar="SUITE_SLURM_ARRAY_PARALLELISM", type=click.IntRange(min=1),
              help="Jobs of the array running at once.")
@click.pass_context
@_errors_are_clear
def run(ctx, claims, all_claims, profile, device, seeds, runs, overwrite, jobs, path, no_sensitivity, no_progress,
        time_limit, prefetch, cuda_graph, executor, **slurm_options):
    """Train and evaluate every run of a claim, resuming from checkpoints, then print its verdict."""
    from suite.rendering.markdown import to_markdown
    from suite.results.store import load_results, write_metrics
    from suite.training.layout import existing_result
    from suite.training.parallel import train_and_evaluate_all, training_order
    from suite.training.graphs import CUDA_GRAPH
    from suite.training.prefetch import PREFETCH
    from suite.training.provenance import git_state, resolve_device
    from suite.training.sensitivity import run_variants

    manifest = _manifest(ctx)
    if bool(claims) == all_claims:
        raise click.UsageError("name the claims (--claim ID, repeatable) or pass --all, not both")
    claims = list(manifest.claims) if all_claims else claims
    dev = resolve_device(device)
    if cuda_graph and dev.type != "cuda":
        raise click.UsageError(f"--cuda-graph captures the step on a GPU; the device here is {dev}")
    configs = [cfg for c in claims for cfg in
               manifest.claim(c).run_configs(profile, seeds=list(seeds) or None, runs=list(runs) or None)]
    root = ctx.obj["results"]
    groups = training_order(configs, root)  # listed in the order they train
    configs = [cfg for group in groups for cfg in group]
    code = git_state(Path(__file__).resolve().parents[1])  # the suite's own checkout
    _start_clock(time_limit)
    os.environ[PREFETCH], os.environ[CUDA_GRAPH] = str(prefetch), str(int(cuda_graph))  # the same
    for group in groups:
        for cfg in group:
            what = f"{cfg.claim} / {cfg.run} (seed {cfg.seed}, profile {cfg.profile}, config {cfg.hash})"
            done = not overwrite and existing_result(root, cfg) is not None
            twin = f", evaluated on {group[0].run}'s training (the same)" if cfg is not group[0] else ""
            click.echo(f"{what}: already done; --overwrite retrains it" if done else f"{what} on {dev}{twin}",
                       err=True)
    if executor == "inline":
        train_and_evaluate_all(configs, root, dev, code, ctx.obj["data"], overwrite=overwrite,
                               progress=not no_progress, jobs=jobs, path=path)
    else:
        from suite.protocol.manifest import slurm_settings
        from suite.training.cluster import submit_and_wait

        slurm = slurm_settings(manifest, {k.removeprefix("slurm_"): v for k, v in slurm_options.items()}) \
            if executor == "slurm" else None
        submit_and_wait(configs, root, device, code, ctx.obj["data"], executor, slurm, overwrite=overwrite,
                        path=path, progress=not no_progress, log=lambda m: click.echo(m, err=True))
    out_of_time = _out_of_time(time_limit)
    if out_of_time and not no_sensitivity:
        click.echo("sensitivity variants not measured: the time limit has passed", err=True)
    variants = [] if no_sensitivity or out_of_time else [cfg for c in claims for cfg in manifest.claim(c).variant_configs(
        profile, seeds=list(seeds) or None, runs=list(runs) or None)]
    _report_untrained(run_variants(variants, root, dev, code, ctx.obj["data"], overwrite=overwrite,
                                   progress=not no_progress, path=path), variants)
    records = load_results(root)
    for claim in claims:
        write_metrics(root, manifest.claim(claim), profile, records)
    click.echo(to_markdown(_reports(manifest, root, list(claims), records)))


def _report_untrained(missing: dict, variants: list, stopped: bool = False):
    """One line per variant left unmeasured for want of a trained model (`stopped`: its training was asked for and
    stopped at the time limit)."""
    retrains = {(c.claim, c.variant): c.retrains for c in variants}
    for (claim, variant), lacking in missing.items():
        why = "it retrains" if retrains[claim, variant] else "its run's trained model is not here (checkpoints/)"
        click.echo(f"{claim}: sensitivity variant {variant!r} not measured for {', '.join(lacking)}: "
                   + ("its training stopped at the time limit; the same command resumes it" if stopped else
                      f"{why}; `suite sensitivity --claim {claim} --variant {variant} --train` trains it"), err=True)


@main.command()
@click.option("--claim", "claim_id", required=True, help="Claim id.")
@click.option("--variant", "variants", multiple=True, help="Only these variants (repeatable; default: all).")
@click.option("--profile", default=PAPER, show_default=True, help="paper (the published protocol) or smoke (tiny).")
@click.option("--seed", "seeds", type=int, multiple=True, help="Run these seeds instead of the claim's.")
@click.option("--run", "runs", multiple=True, help="Only the variants of these runs of the claim (repeatable).")
@click.option("--train", is_flag=True,
              help="Train what the variants need and is not here: a variant that retrains, or the run whose trained "
                   "model an evaluation-only variant reads. Without it, only the models here are evaluated.")
@click.option("--device", envvar="SUITE_DEVICE", default="auto", show_default=True,
              help="auto, cpu, cuda or cuda:N (or set SUITE_DEVICE).")
@click.option("--jobs", envvar="SUITE_JOBS", default=1, show_default=True, type=click.IntRange(min=1),
              help="Train this many variants at once (see `suite run --help`).")
@click.option("--path", "path", envvar="SUITE_PATH", default="auto", show_default=True,
              type=click.Choice(["auto", *PATHS]), help="As for `suite run`.")
@click.option("--overwrite", is_flag=True,
              help="Evaluate again variants whose results come from another configuration (their trained models "
                   "are kept: delete a checkpoint folder to retrain it).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@_time_limit_option
@click.pass_context
@_errors_are_clear
def sensitivity(ctx, claim_id, variants, profile, seeds, runs, train, device, jobs, path, overwrite, no_progress,
                time_limit):
    """Measure a claim's protocol variants (its manifest's `sensitivity`): each evaluated on the trained models,
    retraining only where it changes training (with --train), then print the claim's report."""
    from suite.rendering.markdown import to_markdown
    from suite.training.provenance import git_state, resolve_device
    from suite.training.sensitivity import run_variants

    manifest = _manifest(ctx)
    configs = manifest.claim(claim_id).variant_configs(profile, seeds=list(seeds) or None, runs=list(runs) or None,
                                                       variants=list(variants) or None)
    root = ctx.obj["results"]
    code = git_state(Path(__file__).resolve().parents[1])
    _start_clock(time_limit)
    missing = run_variants(configs, root, resolve_device(device), code, ctx.obj["data"], overwrite, not no_progress,
                           jobs, path, train)
    _report_untrained(missing, configs, stopped=train and _out_of_time(time_limit))
    click.echo(to_markdown(_reports(manifest, root, [claim_id])))


@main.command()
@click.option("--claim", "claims", multiple=True, help="Only these claims.")
@click.option("--format", "fmt", type=click.Choice(["markdown", "csv", "latex"]), default="markdown",
              show_default=True, help="markdown (with figures), csv (flat rows) or latex (booktabs tables).")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file instead of printing (results/REPORT.md in the pipeline).")
@click.option("--figures", type=click.Path(file_okay=False, path_type=Path),
              help="Draw the figures (PNG) into this folder and link them from the markdown report.")
@click.pass_context
@_errors_are_clear
def report(ctx, claims, fmt, output, figures):
    """Published vs measured for every claim, with verdicts."""
    from suite.io import atomic_write_bytes
    from suite.rendering.figures import claim_figures
    from suite.rendering.latex import to_latex
    from suite.rendering.markdown import to_markdown
    from suite.rendering.tables import to_csv

    manifest = _manifest(ctx)
    reports = _reports(manifest, ctx.obj["results"], list(claims) or None)
    links = {}
    if figures is not None:
        figures.mkdir(parents=True, exist_ok=True)
        base = output.parent if output else Path.cwd()
        for rep in reports:
            made = claim_figures(rep.claim.id, rep.profile, rep.records, figures, rep.claim.body()["figures"],
                                 rep.in_progress + rep.variant_progress,
                                 rep.claim.trained_by(PAPER) if rep.in_progress else {}, rep.variant_results)
            links[rep.claim.id] = [os.path.relpath(p, base) for p in made]
    text = {"markdown": lambda: to_markdown(reports, links), "csv": lambda: to_csv(reports),
            "latex": lambda: to_latex(reports)}[fmt]()
    if output:
        atomic_write_bytes(Path(output), text.encode())
    else:
        click.echo(text)


@main.command(name="list")
@click.pass_context
@_errors_are_clear
def list_claims(ctx):
    """The claims in the manifest, with their status."""
    import pandas as pd

    manifest = _manifest(ctx)
    reports = _reports(manifest, ctx.obj["results"])
    rows = [{"claim": r.claim.id, "paper": f"arXiv {r.claim.paper['arxiv']}{r.claim.paper['arxiv_version']}",
             "where": r.claim.body()["where"], "runs": ", ".join(r.claim.body()["runs"]),
             "status": r.verdict + (f"; {r.progress_text()}" if r.progress_text() else "")}
            for r in reports]
    click.echo(pd.DataFrame(rows).to_markdown(index=False) if rows else "No claims in the manifest.")


@main.command()
@click.argument("claim_id")
@click.option("--profile", default=PAPER, show_default=True)
@click.pass_context
@_errors_are_clear
def show(ctx, claim_id, profile):
    """A claim's full protocol for a profile, as the runs will see it (with config hashes and numerics versions)."""
    from suite.training.identity import claim_numerics

    manifest = _manifest(ctx)
    claim = manifest.claim(claim_id)
    body = claim.body(profile)
    hashes = {f"{c.run} seed {c.seed}": c.hash for c in claim.run_configs(profile)}
    click.echo(yaml.safe_dump({"claim": claim_id, "profile": profile, **body, "paper": {"id": body["paper"], **claim.paper},
                               "config_hashes": hashes, "numerics_versions": claim_numerics(claim)},
                              sort_keys=False, allow_unicode=True, width=110))


@main.command()
@click.option("--claim", default="maml-sinusoid", show_default=True, help="Claim whose setting is benchmarked.")
@click.option("--iterations", default=200, show_default=True, type=click.IntRange(min=1),
              help="Timed meta-iterations per measurement.")
@click.option("--warmup", default=10, show_default=True, type=click.IntRange(min=0), help="Untimed meta-iterations first.")
@click.option("--device", default="auto", show_default=True)
@click.pass_context
@_errors_are_clear
def bench(ctx, claim, iterations, warmup, device):
    """Meta-iterations per second and peak memory of each algorithm: vectorised over tasks vs a per-task loop."""
    from suite.training.bench import run_bench

    click.echo(run_bench(_manifest(ctx), claim, iterations, device, ctx.obj["data"], warmup))


@main.command()
@click.option("--claim", "claims", multiple=True, help="Only these claims (repeatable; default: all).")
@click.option("--iterations", default=3, show_default=True, type=click.IntRange(min=1),
              help="Timed training iterations per run (at least; cheap ones are timed for 2 s).")
@click.option("--warmup", default=3, show_default=True, type=click.IntRange(min=0), help="Untimed iterations first.")
@click.option("--device", envvar="SUITE_DEVICE", default="auto", show_default=True)
@click.option("--profile", default=PAPER, show_default=True, help="The profile whose runs are costed.")
@click.option("--record", is_flag=True,
              help="Also write each claim's measured costs to results/costs/ (replacing that claim's earlier record "
                   "for this kind of device), where the report reads what its unfinished paper runs still cost.")
@click.pass_context
@_errors_are_clear
def plan(ctx, claims, iterations, warmup, device, profile, record):
    """What each claim's runs cost here (a job's time on a cluster node like this one): each run timed for a few
    iterations on its own path, times the profile's iterations, plus its learning-curve points, validations and
    evaluation."""
    import torch

    from suite.results.costs import write_costs
    from suite.training.plan import measure_plan, plan_text
    from suite.training.provenance import device_name, git_state, resolve_device

    manifest, where = _manifest(ctx), resolve_device(device)
    load = os.getloadavg()[0]  # what else the machine was running when the timing began (a timing's provenance)
    rows = measure_plan(manifest, list(claims) or list(manifest.claims), where, ctx.obj["data"], iterations, warmup,
                        log=lambda msg: click.echo(msg, err=True), profile=profile)
    click.echo(plan_text(rows, where, iterations, warmup, profile))
    if record:
        machine = {"device": where.type, "device_name": device_name(where), "threads": torch.get_num_threads(),
                   "cpus": os.cpu_count(), "load": round(load, 2)}
        code = git_state(Path(__file__).resolve().parents[1])  # the suite's own checkout
        for path in write_costs(ctx.obj["results"], rows, profile, machine, code,
                                {"iterations": iterations, "warmup": warmup}):
            click.echo(f"recorded {path}", err=True)


NUMERICS_FILE = "numerics.yaml"
NUMERICS_HEADER = """\
# Generated by `suite numerics` from benchmarks.yaml and the numerics versions the code declares (each algorithm,
# task family and model module's NUMERICS_VERSION, and suite/training/identity.py's); do not edit. Each claim's DVC
# stage depends on its entry, so bumping a version reruns exactly the claims that use it, while a comment, a rename
# or a moved file reruns nothing. tests/test_architecture.py fails while this file is out of date.
"""


@main.command()
@click.option("--claim", "claims", multiple=True, help="Only these claims (repeatable; default: all).")
@click.pass_context
@_errors_are_clear
def park(ctx, claims):
    """Copy each training in progress's latest checkpoint (a run's, or a retraining sensitivity variant's), with the
    candidate snapshots of one that selects its model on validation, into checkpoints-in-progress/, which git
    tracks, so that another machine's `suite run` (`suite sensitivity --train`) resumes it (the runner deletes the
    copy when the run's results are written).
    Run it before a machine goes, and commit the folder with the runs' progress.json."""
    from suite.results.store import load_progress
    from suite.training.parking import park as park_one

    base = ctx.obj["results"].resolve().parent
    progress = [p for p in load_progress(ctx.obj["results"], resumable_only=False)
                if not claims or p["claim"] in claims]
    if not progress:
        click.echo("No training in progress (no progress.json under the results folder).")
    for p in progress:
        what = (f"{p['claim']}/{p['profile']}/{p['run']}" + (f" variant {p['variant']}" if p["variant"] else "")
                + f" seed {p['seed']} ({p['iteration']:,} of {p['iterations']:,})")
        if (dest := park_one(base, p)) is not None:
            size = sum(f.stat().st_size for f in dest.parent.rglob("*.pt"))  # latest.pt and any candidates
            click.echo(f"{what}: parked, {size / 2**20:.1f} MiB in {dest.parent.relative_to(base)}")
        elif p["_resumable"] == "parked":
            click.echo(f"{what}: parked already (this machine has no newer checkpoint)")
        else:
            click.echo(f"{what}: no checkpoint here or parked; it restarts from iteration 0 (remove "
                       f"{p['_path']})", err=True)


@main.command()
@click.option("--check", is_flag=True, help=f"Only check that {NUMERICS_FILE} is up to date (exit 1 if not).")
@click.pass_context
@_errors_are_clear
def numerics(ctx, check):
    """Write numerics.yaml beside the manifest: per claim, the numerics versions of the components its runs use."""
    from suite.io import atomic_write_bytes
    from suite.training.identity import claim_numerics

    manifest = _manifest(ctx)
    text = NUMERICS_HEADER + yaml.safe_dump(
        {"claims": {claim_id: claim_numerics(claim) for claim_id, claim in manifest.claims.items()}},
        sort_keys=False, width=110)
    path = Path(manifest.path).parent / NUMERICS_FILE
    if not check:
        atomic_write_bytes(path, text.encode())
        click.echo(f"wrote {path}")
    elif not path.is_file() or path.read_text() != text:
        raise click.ClickException(f"{path} is out of date with the manifest or the code's numerics versions: run "
                                   "`suite numerics` and commit it (with regenerated goldens if a version changed)")


GENERATED = tuple(name for name, family in families().items() if family.GENERATED)  # nothing to fetch
WITH_OPTIONS = ("miniimagenet", "leo_embeddings")  # take --url, --sha256 and --generated


@main.command()
@click.argument("dataset", type=click.Choice(["omniglot", "miniimagenet", "leo_embeddings", *GENERATED]))
@click.option("--from", "source", type=click.Path(path_type=Path),
              help="A folder holding the archives (or their extracted folders) instead of downloading them; for "
                   "miniimagenet, your copy: a folder or archive of learn2learn pickles, torchmeta hdf5, image "
                   "folders, Ravi's images/ or an ImageNet training folder; for leo_embeddings, LEO's "
                   "embeddings.zip or its extracted embeddings/ folder.")
@click.option("--url", help="miniimagenet: download an archive of your copy from this URL (needs --sha256); "
                            "leo_embeddings: download embeddings.zip from this URL instead of the official one.")
@click.option("--sha256", help="The sha256 the downloaded file must have (leo_embeddings: also for the official URL, "
                               "whose sha256 is otherwise only recorded).")
@click.option("--generated", is_flag=True,
              help="miniimagenet, leo_embeddings: write a small synthetic stand-in with the real class lists (no "
                   "real data).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.pass_context
@_errors_are_clear
def fetch(ctx, dataset, source, url, sha256, generated, no_progress):
    """Download a dataset (or take it from --from), verify its content and cache it in the data folder.

    With SUITE_FETCH_FROM=DIR set and no --from (nor --url, --generated), the dataset is taken from DIR/<dataset>
    (a local mirror, as CI uses); with SUITE_FETCH_GENERATED=miniimagenet,leo_embeddings (either or both), those
    are the generated stand-ins (CI has neither Mini-ImageNet images nor LEO's embeddings; results on them are
    reported as not a reproduction). The regression families (sinusoid, bmaml_sinusoid, ambiguous_regression) draw
    their tasks on the fly, so `fetch sinusoid` only records that in datasets/sinusoid/. Mini-ImageNet has no
    official download: give --from, --url with --sha256, or --generated. leo_embeddings downloads LEO's official
    embeddings.zip (several GB; its sha256 was never published, so it is recorded, or checked with --sha256) unless
    given --from or --url, and reads its center-crop embeddings of Mini-ImageNet and tieredImageNet."""
    from suite.data.leo_embeddings import fetch_leo_embeddings
    from suite.data.miniimagenet import fetch_miniimagenet
    from suite.data.omniglot import fetch_omniglot
    from suite.io import atomic_write_json

    given = [flag for flag, value in (("--from", source), ("--url", url), ("--generated", generated)) if value]
    if dataset not in WITH_OPTIONS and (url or sha256 or generated):
        raise click.ClickException(f"--url, --sha256 and --generated are for miniimagenet, not {dataset} "
                                   "(leo_embeddings takes them too)")
    if sha256 and not url and dataset != "leo_embeddings":
        raise click.ClickException("--sha256 goes with --url")
    if not given and not sha256 and dataset in os.environ.get("SUITE_FETCH_GENERATED", "").split(","):
        if dataset not in WITH_OPTIONS:
            raise click.ClickException(f"SUITE_FETCH_GENERATED: only {' and '.join(WITH_OPTIONS)} have a generated "
                                       f"stand-in, not {dataset}")
        generated = True
    elif not given and not sha256 and os.environ.get("SUITE_FETCH_FROM"):
        source = Path(os.environ["SUITE_FETCH_FROM"]) / dataset
    root = ctx.obj["data"]
    log = lambda msg: click.echo(msg, err=True)  # noqa: E731
    if dataset in GENERATED:
        atomic_write_json(root / dataset / "dataset.json", {
            "dataset": dataset, "files": [],
            "note": f"its tasks are drawn on the fly by suite/tasks/{dataset}.py; there is nothing to fetch"})
        log(f"{dataset}: generated on the fly, nothing to fetch")
    elif dataset == "miniimagenet":
        fetch_miniimagenet(root, source, url, sha256, generated=generated, progress=not no_progress, log=log)
    elif dataset == "leo_embeddings":
        fetch_leo_embeddings(root, source, url, sha256, generated=generated, progress=not no_progress, log=log)
    else:
        fetch_omniglot(root, source, progress=not no_progress, log=log)


if __name__ == "__main__":
    main()

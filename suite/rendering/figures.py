"""Figures for the report, drawn from results/ only: learning curves per claim, and for regression claims the
MAML paper's Figure 2 (true function, the K points, predictions before and after fine-tuning)."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from suite.io import atomic_write  # noqa: E402
from suite.protocol import PAPER  # noqa: E402
from suite.protocol.components import algorithms  # noqa: E402
from suite.protocol.fields import measures_resources  # noqa: E402
from suite.protocol.manifest import figure_points  # noqa: E402
from suite.results.store import measure, twin_in_claim  # noqa: E402

LOSS_SCALE = {
    "sum": " The per-image losses are summed, not averaged (loss_normalisation: sum), so a run whose loss covers "
           "more images sits higher: Reptile's covers all ways × shots support images of a task.",
    "sum/shots": " The per-image losses are summed and divided by the shots (loss_normalisation: sum/shots), that "
                 "is ways × their mean.",
}


def learning_curves_caption(body: dict, curves=(), circled: bool = False) -> str:
    """What the training-loss panel plots — each algorithm says what it logs (its LOGGED_LOSS) — and on what
    scale: a summed loss grows with the images it covers; and what the panels beside it plot (panels_caption)."""
    used = dict.fromkeys(run["algorithm"] for run in body["runs"].values())
    logged = "; ".join(f"{algorithm}: {algorithms()[algorithm].LOGGED_LOSS}" for algorithm in used)
    task = body["task"]
    scale = LOSS_SCALE.get(task["loss_normalisation"], "") if "loss_normalisation" in task else ""
    return (f"the training loss each run logs — {logged}. Points are means over log_every iterations.{scale}"
            f"{panels_caption(curves, circled)}")


def panels_caption(curves, circled: bool = False) -> str:
    """What the panels beside the loss plot, of the training curves a figure draws (learning_curves' panels);
    `circled`: some result there was evaluated with a model its validation selected, which is circled."""
    kinds = [kind for kind in ("test", "validation") if any(c.get(kind, {}).get("iteration") for c in curves)]
    what = {"test": "on test tasks during training (a moving average over its points)",
            "validation": "on the validation tasks that select the model a run is evaluated with "
                          "(evaluation.selection)"}
    circle = (" A circle marks the snapshot (or snapshots) a run's evaluation selected on them."
              if circled and "validation" in kinds else "")
    return (f" Beside the training loss, the metric its axis names {' and '.join(what[k] for k in kinds)}.{circle}"
            if kinds else "")


def circled_selections(records) -> bool:
    """Whether some of these results was evaluated with the model(s) its validation selected: learning_curves
    circles them on the validation panel."""
    return any(r.get("selection", {}).get("validation") for r in records)


def _save(fig, path: Path) -> Path:
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=130, bbox_inches="tight"))
    plt.close(fig)
    return path


def _smooth(values: list[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v - (values[i - window] if i >= window else 0.0)
        out.append(total / min(i + 1, window))
    return out


def run_styles(keys: list[str]) -> dict[str, dict]:
    """One colour and line style per run, the same in every panel: ten colours, then dashed, then dotted."""
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {k: {"color": colours[i % len(colours)], "linestyle": ("-", "--", ":")[i // len(colours) % 3]}
            for i, k in enumerate(keys)}


def learning_curves(claim_id: str, profile: str, records: list[dict], path: Path, so_far: bool = False,
                    variants: bool = False) -> Path | None:
    """The training loss of each training (a resource measurement's few timed iterations are not a learning curve;
    a run evaluated on another run's training is named beside that run's curve, not drawn over it; one evaluated on
    another claim's run's training draws that curve, named after it; a sensitivity variant's is named after the
    variant); `so_far`: of trainings under way (progress_curves); `variants`: of variants beside their runs
    (variant_curves)."""
    rows = [r for r in records if r["training"]["curve"]["iteration"] and not twin_in_claim(r)
            and not measures_resources(r.get("config", {}).get("evaluation"))]
    if not rows:
        return None
    twins: dict[tuple[str, int, str | None], list[str]] = {}
    for r in records:
        if twin := twin_in_claim(r):
            twins.setdefault((twin, r["seed"], r.get("variant")), []).append(r["run"])
    several_seeds = so_far or len({r["seed"] for r in rows}) > 1  # so far: which seed is under way
    name = {id(r): " = ".join([r["run"], *twins.get((r["run"], r["seed"], r.get("variant")), [])])
            + (f" = {r['training']['trained_by']}" if r["training"].get("trained_by") else "") for r in rows}
    # variants that retrain alike share one training (its training_hash): one curve, named after all of them,
    # rather than one drawn exactly over the other under two legend entries
    shared: dict[tuple, list[dict]] = {}
    for r in rows:
        shared.setdefault((r["seed"], r["training"].get("training_hash") or id(r)), []).append(r)
    rows = [group[0] for group in shared.values()]
    label = {}
    for group in shared.values():
        named = [v for r in group if (v := r.get("variant"))]
        label[id(group[0])] = (" = ".join(dict.fromkeys(name[id(r)] for r in group))
                               + (f", variant{'s' if len(named) > 1 else ''} {' = '.join(named)}" if named else "")
                               + (f" (seed {group[0]['seed']})" if several_seeds else ""))
    style = run_styles([label[id(r)] for r in rows])
    if variants:  # one colour per run or variant, one line style per seed: a variant's seeds read as one
        groups = list(dict.fromkeys((r["run"], r.get("variant")) for r in rows))
        seeds = sorted({r["seed"] for r in rows})
        colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        style = {label[id(r)]: {"color": colours[groups.index((r["run"], r.get("variant"))) % len(colours)],
                                "linestyle": ("-", "--", ":", "-.")[seeds.index(r["seed"]) % 4]} for r in rows}
    # beside the loss, what the training measured on tasks: test tasks (a learning curve, smoothed over its many
    # points) and validation tasks (model selection, suite.training.loop: what picks the model that is evaluated)
    panels = [(kind, drawn) for kind in ("test", "validation")
              if (drawn := [r for r in rows if r["training"]["curve"].get(kind, {}).get("iteration")])]
    fig, axes = plt.subplots(1, 1 + len(panels), figsize=(7 + 6 * len(panels), 4), squeeze=False)
    ax = axes[0][0]
    for r in rows:
        curve = r["training"]["curve"]
        ax.plot(curve["iteration"], curve["loss"], label=label[id(r)], linewidth=1.2, **style[label[id(r)]])
    losses = [v for r in rows for v in r["training"]["curve"]["loss"] if v > 0]
    if losses and max(losses) / min(losses) > 20:
        ax.set_yscale("log")
    ax.set_xlabel("meta-iteration")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # a few iterations (smoke) get no fractional ticks
    ax.set_ylabel("training loss")
    title = (f"{claim_id}: training loss ({profile} profile{', so far' if so_far else ''}"
             f"{', retraining variants beside their runs' if variants else ''})")
    if panels:  # over all the panels: as the loss panel's own title it ran into the next panel's
        fig.suptitle(title)
        ax.set_title("training loss")
    else:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    for ax, (kind, drawn) in zip(axes[0][1:], panels):
        for r in drawn:
            points = r["training"]["curve"][kind]
            window = max(1, len(points["value"]) // 50) if kind == "test" else 1
            ax.plot(points["iteration"], _smooth(points["value"], window), linewidth=1.2, **style[label[id(r)]])
            if kind == "validation" and (chosen := r.get("selection", {})).get("validation"):
                # the snapshot(s) the evaluation selected by their validation value (run.selected_model), circled
                ax.plot(chosen["iterations"], chosen["validation"]["values"], linestyle="none", marker="o",
                        markersize=8, fillstyle="none", color=style[label[id(r)]]["color"])
        ax.set_xlabel("meta-iteration")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(f"{kind} {drawn[0]['training']['curve'][kind]['metric']}")
        values = [v for r in drawn for v in r["training"]["curve"][kind]["value"] if math.isfinite(v)]
        if values and max(values) - min(values) < 1e-3:  # a flat curve (float noise): a readable axis, not 1e-8 steps
            ax.set_ylim(min(values) - 0.05, max(values) + 0.05)
        ax.set_title(f"test tasks during training (moving average of {window})" if kind == "test" else
                     "validation tasks during training (they select the model)")
        ax.grid(alpha=0.3)
    # one legend for all panels, below them, so that it hides no curve however many runs there are
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="upper center", bbox_to_anchor=(0.5, 0.0),
               fontsize=8, ncol=min(len(rows), 6 if panels else 3), frameon=False)
    return _save(fig, path)


def series_points(points: list[tuple[str, float, str]], records: list[dict]) -> tuple[list, list, list]:
    """(x, mean, interval) of a figure series' (run, x, metric) points in x order (suite.protocol.manifest
    .figure_points); a run with no result is NaN, so that the line breaks there rather than bridging the gap."""
    xs, ys, errs = [], [], []
    for run, x, metric in sorted(points, key=lambda p: p[1]):
        m = measure([r for r in records if r["run"] == run], metric)
        xs.append(x)
        ys.append(math.nan if m is None else m.mean)
        errs.append(0.0 if m is None else m.interval or 0.0)
    return xs, ys, errs


def series_figure(claim_id: str, profile: str, spec: dict, records: list[dict], path: Path) -> Path | None:
    """A figure the manifest lays out: for each series, the metric of its runs against their x values, with the
    95% interval over test tasks (one seed) or the std over seeds."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    drawn, ticks = False, set()
    for label, points in figure_points(spec).items():
        xs, ys, errs = series_points(points, records)
        ticks.update(x for _, x, _ in points)
        if any(y == y for y in ys):
            ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=3, label=label)
            drawn = True
    if not drawn:
        plt.close(fig)
        return None
    if len(ticks) <= 12:  # the settings the runs use, not matplotlib's round numbers between them
        ax.set_xticks(sorted(ticks), [f"{t:g}" for t in sorted(ticks)])
    ax.set_xlabel(spec["x_label"])
    ax.set_ylabel(spec["metric"] + (" after the steps" if "steps" in spec else ""))
    ax.set_title(f"{claim_id}: {spec['title']} ({profile} profile)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


EXAMPLE_COLUMNS = 4


def regression_examples(claim_id: str, profile: str, records: list[dict], path: Path) -> Path | None:
    """Rows: example test tasks; columns: runs (at most EXAMPLE_COLUMNS; more continue in a band of rows below). As
    the MAML paper's Figure 2: ground truth, the K points used for the gradient, the prediction before fine-tuning
    and after the first and last recorded step counts; for a set of particles (PLATIPUS's samples, BMAML's
    particles) also each one's function after the last, as PLATIPUS's Figure 1 draws its samples."""
    runs = [r for r in records if r.get("examples") and "x" in r["examples"][0]]
    if not runs:
        return None
    n_examples = min(len(r["examples"]) for r in runs)
    n_examples = min(n_examples, 2)
    # at most EXAMPLE_COLUMNS runs side by side; more runs continue in a band of rows below (bmaml-sinusoid's eight)
    columns, bands = min(len(runs), EXAMPLE_COLUMNS), -(-len(runs) // EXAMPLE_COLUMNS)
    fig, axes = plt.subplots(n_examples * bands, columns, figsize=(4.2 * columns, 3.2 * n_examples * bands),
                             squeeze=False)

    def panel(i: int, row: int):  # run i's example `row`
        band, col = divmod(i, columns)
        return axes[band * n_examples + row][col]

    for i in range(len(runs), bands * columns):  # the last band's empty panels
        for row in range(n_examples):
            panel(i, row).set_axis_off()
    for i, r in enumerate(runs):
        for row in range(n_examples):
            ex, ax = r["examples"][row], panel(i, row)
            steps = sorted(ex["predictions"], key=int)
            shown = [s for s in (steps[0], steps[1] if len(steps) > 1 else None, steps[-1]) if s is not None]
            ax.plot(ex["x"], ex["y"], color="tab:red", linewidth=2, label="ground truth")
            for j, sample in enumerate(ex.get("samples", {}).get(shown[-1], [])):  # a set of particles' functions
                ax.plot(ex["x"], sample, color="tab:purple", linewidth=0.7, alpha=0.6,
                        label=None if j else f"each sample, {shown[-1]} steps")
            styles = {shown[0]: ("tab:green", ":"), shown[-1]: ("navy", "-")}
            if len(shown) == 3:
                styles[shown[1]] = ("tab:cyan", "--")
            for step in dict.fromkeys(shown):
                color, style = styles[step]
                label = "pre-update" if step == "0" else f"{step} grad step{'s' if step != '1' else ''}"
                ax.plot(ex["x"], ex["predictions"][step], color=color, linestyle=style, label=label)
            ax.scatter(ex["support_x"], ex["support_y"], marker="^", color="black", zorder=3, s=30,
                       label="used for grad")
            drawn = ex["y"] + ex["support_y"] + [v for s in shown for v in ex["predictions"][s]]
            span = min(max(abs(v) for v in drawn if v == v) * 1.1, 3 * max(abs(v) for v in ex["y"]) + 1)
            ax.set_ylim(-span, span)
            seed = f" (seed {r['seed']})" if len({x["seed"] for x in runs}) > 1 else ""
            ax.set_title(f"{r['run']}{seed}, test task {row}", fontsize=9)
            ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="lower right")
    shots = {len(r["examples"][0]["support_x"]) for r in runs}
    fig.suptitle(f"{claim_id}: {f'{shots.pop()}-shot ' if len(shots) == 1 else ''}fine-tuning ({profile} profile)")
    return _save(fig, path)


def policy_examples(claim_id: str, profile: str, records: list[dict], path: Path) -> Path | None:
    """Rows: example test goals; columns: runs. As the MAML paper's Figure 5: the goal and one trajectory of the
    policy before adaptation and after each recorded number of policy-gradient steps, from the origin."""
    runs = [r for r in records if r.get("examples") and "paths" in r["examples"][0]]
    runs = list({r["run"]: r for r in sorted(runs, key=lambda r: -r["seed"])}.values())  # each run's first seed
    if not runs:
        return None
    n_examples = min(2, *(len(r["examples"]) for r in runs))
    fig, axes = plt.subplots(n_examples, len(runs), figsize=(4.2 * len(runs), 3.8 * n_examples), squeeze=False)
    for col, r in enumerate(runs):
        for row in range(n_examples):
            ex, ax = r["examples"][row], axes[row][col]
            for step, visited in sorted(ex["paths"].items(), key=lambda p: int(p[0])):
                xs, ys = zip(*visited)
                label = "pre-update" if step == "0" else f"{step} grad step{'s' if step != '1' else ''}"
                ax.plot(xs, ys, marker=".", markersize=3, linewidth=1, label=label)
            ax.scatter([ex["goal"][0]], [ex["goal"][1]], marker="*", s=160, color="tab:red", zorder=3, label="goal")
            ax.scatter([0], [0], marker="o", s=30, color="black", zorder=3)
            ax.set_aspect("equal", adjustable="datalim")
            seed = f" (seed {r['seed']})" if len({x["seed"] for x in runs}) > 1 else ""
            ax.set_title(f"{r['run']}{seed}, test goal {row}", fontsize=9)
            ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.suptitle(f"{claim_id}: a trajectory before and after adaptation ({profile} profile)")
    return _save(fig, path)


def progress_curves(claim_id: str, in_progress: list[dict], trained_by: dict[str, str], path: Path) -> Path | None:
    """The learning curves so far of the paper trainings under way, its runs' and its sensitivity variants' (named
    after their variant): each progress.json's curve at its last checkpoint (suite.training.run._write_progress; one
    written by older code has none). A run that will be evaluated on one of its runs' trainings (`trained_by`,
    suite.protocol.Claim.trained_by) is named beside its curve."""
    rows = [{"run": p["run"], "seed": p["seed"], "variant": p.get("variant"), "training": {"curve": p["curve"]}}
            for p in in_progress if p.get("curve", {}).get("iteration")]
    twins = [{"run": twin, "seed": r["seed"], "training": {"curve": {"iteration": []}, "trained_by": first}}
             for twin, first in trained_by.items() for r in rows if r["run"] == first and not r["variant"]]
    return learning_curves(claim_id, PAPER, rows + twins, path, so_far=True) if rows else None


def variant_curves(claim_id: str, profile: str, records: list[dict], variant_results: list[dict], path: Path
                   ) -> Path | None:
    """The learning curves of a claim's retraining sensitivity variants (of `variant_results`, those that retrain)
    beside those of the runs they retrain, seed by seed: what changing the training did to it."""
    retrained = [r for r in variant_results if r.get("retrains")]
    runs = {(r["run"], r["seed"]) for r in retrained}
    mine = [r for r in records if (r["run"], r["seed"]) in runs]
    return learning_curves(claim_id, profile, mine + retrained, path, variants=True) if retrained else None


def claim_figures(claim_id: str, profile: str, records: list[dict], folder: Path, specs=(), in_progress=(),
                  trained_by=None, variant_results=()) -> list[Path]:
    """The claim's figures from these records, and from the paper trainings under way (`in_progress`, their
    progress.json, its runs' and its variants'; `trained_by`: the paper profile's twins; `variant_results`: its
    variants' results, those that retrain drawn beside their runs). A figure of the claim that they cannot draw any
    more (e.g. one drawn from smoke runs, now that the report shows the paper profile, or the curves so far of
    trainings that have finished) is removed, not left to be mistaken."""
    curves, examples = folder / f"{claim_id}-learning-curves.png", folder / f"{claim_id}-examples.png"
    so_far, variants = folder / f"{claim_id}-paper-so-far.png", folder / f"{claim_id}-variant-curves.png"
    made = [learning_curves(claim_id, profile, records, curves),
            regression_examples(claim_id, profile, records, examples)
            or policy_examples(claim_id, profile, records, examples)]
    made += [series_figure(claim_id, profile, spec, records, folder / f"{claim_id}-figure-{i + 1}.png")
             for i, spec in enumerate(specs)]
    made.append(variant_curves(claim_id, profile, records, list(variant_results), variants))
    made.append(progress_curves(claim_id, list(in_progress), trained_by or {}, so_far))
    made = [p for p in made if p is not None]
    series = (p for p in folder.glob(f"{claim_id}-figure-*.png") if p.stem.rsplit("-", 1)[1].isdigit())
    for old in (curves, examples, so_far, variants, *series):
        if old not in made:
            old.unlink(missing_ok=True)
    return made

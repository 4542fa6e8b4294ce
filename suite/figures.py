"""Figures for the report, drawn from results/ only: learning curves per claim, and for regression claims the
MAML paper's Figure 2 (true function, the K points, predictions before and after fine-tuning)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from suite.io import atomic_write  # noqa: E402

WHAT_IS_LOGGED = ("MAML and first-order MAML log the query loss after adaptation, Reptile the support loss before "
                  "it, the pretrained baseline its loss on the pooled batch; points are means over log_every "
                  "iterations.")


def _save(fig, path: Path) -> Path:
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=130, bbox_inches="tight"))
    plt.close(fig)
    return path


def learning_curves(claim_id: str, profile: str, records: list[dict], path: Path) -> Path | None:
    rows = [r for r in records if r["training"]["curve"]["iteration"]]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in rows:
        curve = r["training"]["curve"]
        label = r["run"] + (f" (seed {r['seed']})" if len({x["seed"] for x in rows}) > 1 else "")
        ax.plot(curve["iteration"], curve["loss"], label=label, linewidth=1.2)
    losses = [v for r in rows for v in r["training"]["curve"]["loss"] if v > 0]
    if losses and max(losses) / min(losses) > 20:
        ax.set_yscale("log")
    ax.set_xlabel("meta-iteration")
    ax.set_ylabel("training loss")
    ax.set_title(f"{claim_id}: learning curves ({profile} profile)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2 if len(rows) > 4 else 1)
    return _save(fig, path)


def regression_examples(claim_id: str, profile: str, records: list[dict], path: Path) -> Path | None:
    """Rows: example test tasks; columns: runs. As the MAML paper's Figure 2: ground truth, the K points used for
    the gradient, the prediction before fine-tuning and after the first and last recorded step counts."""
    runs = [r for r in records if r.get("examples")]
    if not runs:
        return None
    n_examples = min(len(r["examples"]) for r in runs)
    n_examples = min(n_examples, 2)
    fig, axes = plt.subplots(n_examples, len(runs), figsize=(4.2 * len(runs), 3.2 * n_examples), squeeze=False)
    for col, r in enumerate(runs):
        for row in range(n_examples):
            ex, ax = r["examples"][row], axes[row][col]
            steps = sorted(ex["predictions"], key=int)
            shown = [s for s in (steps[0], steps[1] if len(steps) > 1 else None, steps[-1]) if s is not None]
            ax.plot(ex["x"], ex["y"], color="tab:red", linewidth=2, label="ground truth")
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
            ax.set_title(f"{r['run']}, test task {row}", fontsize=9)
            ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{claim_id}: {len(runs[0]['examples'][0]['support_x'])}-shot fine-tuning ({profile} profile)")
    return _save(fig, path)


def claim_figures(claim_id: str, profile: str, records: list[dict], folder: Path) -> list[Path]:
    made = [learning_curves(claim_id, profile, records, folder / f"{claim_id}-learning-curves.png"),
            regression_examples(claim_id, profile, records, folder / f"{claim_id}-examples.png")]
    return [p for p in made if p is not None]

"""LEO: Latent Embedding Optimization (Rusu, Rao, Sygnowski, Vinyals, Pascanu, Osindero & Hadsell, ICLR 2019, arXiv
1807.05960 §3 and Algorithm 1; deepmind/leo model.py and runner.py): a linear classifier on fixed image embeddings
whose weights are decoded, per task, from a low-dimensional latent code per class; the inner loop adapts the codes,
then fine-tunes the decoded weights.

    for each task T_i, support (x [N·K, d], y), queries (x', y'):
        h = encoder(dropout(x))                                     [N·K, L], no bias
        (μ_z, σ_z)_c = mean over class c's examples of mean_j relation(h_n, h_j)         (one Gaussian per class)
        z ~ N(μ_z, σ_z) per example (its mean when deterministic)   [N, K, L]
        w(z) ~ N(decoder(z))                                        [N, K, d]; logits(x; w) = x · mean_k w_{c,k}
        z' = z − α ⊙ ∇z Σ CE(logits(dropout(x); w(z)), y)          inner_steps times, a fresh w(z) after each
        w' = w − η ⊙ ∇w Σ CE(logits(dropout(x); w), y)              finetune_steps times, from w(z')
        L_i = mean CE(logits(dropout(x'); w'), y') + β KL(q(z) ‖ N(0, I)) + γ mean (stop_grad(z') − z)²
    φ ← Adam(clip_by_norm(clip_by_value(∇φ [mean_i L_i + λ1/2 Σ‖W‖² + λ2 orthogonality(decoder)])))

α [L] and η [d] are meta-learned rates (inner_lr_init, finetune_lr_init); the inner gradients are those of the
losses' sum (tf.gradients of a vector), the meta-loss their mean. σ = max(exp(s) − (1 − offset), 1e-10), the offset
0 for z and √(2/(N + d)) for w (a Glorot-like default spread). KL is the one-sample estimate mean(log q(z) − log p(z)).
At test time (the Schedule) nothing is sampled or dropped: z and w are their means, and the evaluation's steps are
the fine-tuning steps that follow the latent adaptation. A meta-batch whose loss or gradient is NaN steps along the
gradient of 1e-4 · Σ‖W‖²/2 instead (model.py grads_and_vars). Tasks are computed one after another (the loop path).
"""
from __future__ import annotations

import math

from suite.algorithms.base import Learner as BaseLearner, make_torch_optimizer
from suite.algorithms.base import check_evaluation, extra_inputs, finetune_steps_limit  # noqa: F401 (usual answers)
from suite.algorithms.maml import ARGS as MAML_ARGS
from suite.algorithms.maml import carries_inner_state, hessian_vector_products, second_order, task_shape  # noqa: F401
from suite.lazy import lazy
from suite.protocol.schema import Field, ManifestError

torch = lazy("torch")
F = lazy("torch.nn.functional")

# Bump when a change alters what it computes (then regenerate tests/goldens/).
NUMERICS_VERSION = 1
LOGGED_LOSS = "the meta-batch's mean query cross-entropy with the KL and encoder penalties, before regularisation"

ARGS = {
    **{k: MAML_ARGS[k] for k in ("iterations", "meta_batch", "shots", "queries", "meta_optimizer")},
    "latent_size": Field("positive_int", doc="L, the latent code's size (num_latents)"),
    "inner_steps": Field("positive_int", doc="adaptation steps in the latent space (inner_unroll_length)"),
    "finetune_steps": Field("nonnegative_int", doc="fine-tuning steps of the decoded weights in training "
                                                   "(finetuning_unroll_length)"),
    "inner_lr_init": Field("positive_float", doc="the learned latent step sizes α's initial value"),
    "finetune_lr_init": Field("positive_float", doc="the learned fine-tuning step sizes η's initial value"),
    "dropout": Field("float", doc="rate of the dropout on the embeddings in training (dropout_rate)"),
    "kl_weight": Field("float", doc="β, the weight of the latent code's KL to N(0, I)"),
    "encoder_penalty_weight": Field("float", doc="γ, the weight of the adapted codes' distance from the encoded"),
    "l2_penalty_weight": Field("float", doc="λ1, the L2 penalty λ1·Σ‖W‖²/2 on the encoder, relation and decoder"),
    "orthogonality_penalty_weight": Field("float", doc="λ2, the weight of the decoder rows' correlation penalty"),
    "gradient_clip_value": Field("positive_float", doc="each meta-gradient entry clipped to ±this first"),
    "gradient_clip_norm": Field("positive_float", doc="then each meta-gradient tensor's norm clipped to this"),
    "deterministic": Field("bool", doc="codes and weights are their means in training too (Table 2's "
                                       "'deterministic' ablation); false: sampled, as LEO"),
}

WEIGHTS = ("encoder", "relation.0", "relation.1", "relation.2", "decoder")  # the L2-penalised matrices
NAN_FALLBACK = 1e-4  # model.py: a NaN meta-batch steps along the gradient of 1e-4/λ1 × the L2 penalty


def check(hp: dict, task: dict, family, where: str):
    if not 0 <= hp["dropout"] < 1:
        raise ManifestError(f"{where}.dropout: a rate in [0, 1) (got {hp['dropout']})")
    if hp["l2_penalty_weight"] <= 0:
        raise ManifestError(f"{where}.l2_penalty_weight: must be positive (LEO's NaN fallback divides by it)")


def paths(hp: dict) -> tuple[str, ...]:
    """The loop: each task draws its own dropout masks and samples."""
    return ("loop",)


def glorot_uniform(fan_in: int, fan_out: int, generator, device) -> "torch.Tensor":
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return (torch.rand(fan_in, fan_out, generator=generator) * 2 - 1).mul_(limit).to(device)


def initial_params(model, seed: int, hp: dict, device) -> dict:
    """LEO's parameters from the run's seed: Glorot-uniform matrices [in, out] (sonnet's), no biases, and the two
    learned rates at their initial values. The classifier itself is decoded per task, so `model` only gives d."""
    from suite.tasks.base import seeded_generator
    d, L = model.module[0].in_features, hp["latent_size"]
    generator = seeded_generator(seed)
    params = {"encoder": glorot_uniform(d, L, generator, device)}
    for i in range(3):  # snt.nets.MLP([2L] * 3): ReLU between the layers, none after the last
        params[f"relation.{i}"] = glorot_uniform(2 * L, 2 * L, generator, device)
    params["decoder"] = glorot_uniform(L, 2 * d, generator, device)
    params["inner_lr"] = torch.full((L,), float(hp["inner_lr_init"]), device=device)
    params["finetune_lr"] = torch.full((d,), float(hp["finetune_lr_init"]), device=device)
    return params


def gaussian(stats, offset: float, noise):
    """(a sample, or the mean when noise is None; the KL estimate, 0 without a sample) of N(mean, σ) from stats =
    [mean, s] along the last dimension, σ = max(exp(s) − (1 − offset), 1e-10) (model.py possibly_sample)."""
    mean, s = stats.chunk(2, -1)
    if noise is None:
        return mean, stats.new_zeros(())
    std = torch.clamp(torch.exp(s) - (1.0 - offset), min=1e-10)
    sample = mean + std * noise
    q = torch.distributions.Normal(mean, std)
    kl = (q.log_prob(sample) - torch.distributions.Normal(0.0, 1.0).log_prob(sample)).mean()
    return sample, kl


def encode(theta: dict, x, y, ways: int):
    """The per-class code statistics [N, 2L]: each example's encoding, its relation to every example (mean over
    pairs), averaged over the class's examples."""
    h = x @ theta["encoder"]
    n = len(h)
    pairs = torch.cat([h.unsqueeze(1).expand(n, n, -1), h.unsqueeze(0).expand(n, n, -1)], -1)
    r = torch.relu(pairs @ theta["relation.0"])
    r = torch.relu(r @ theta["relation.1"])
    r = (r @ theta["relation.2"]).mean(1)
    members = F.one_hot(y, ways).to(r.dtype)  # [n, N]: the examples of each class
    return (members.t() @ r) / members.sum(0).unsqueeze(1)


def decode(theta: dict, z, noise):
    """The classifier weights [N, K, d] from codes z [N, K, L] (their means when noise is None) and the KL of that
    sample (unused: only the codes' KL enters the loss)."""
    d = theta["finetune_lr"].shape[0]
    offset = math.sqrt(2.0 / (z.shape[0] + d))
    return gaussian(z @ theta["decoder"], offset, noise)[0]


def logits(x, w):
    """x · mean_k w_{c,k}: every example against each class's K weight vectors, averaged (model.py predict)."""
    return x @ w.mean(1).t()


def summed_ce(x, y, w):
    return F.cross_entropy(logits(x, w), y, reduction="sum")


def task_loss(theta: dict, sx, sy, qx, qy, ways: int, hp: dict, generator):
    """One task's meta-training loss L_i (and its query accuracy): dropout and samples drawn from `generator`."""
    K = len(sx) // ways

    def dropped(x):
        if hp["dropout"] == 0:
            return x
        keep = (torch.rand(x.shape, generator=generator) >= hp["dropout"]).to(x.dtype).to(x.device)
        return x * keep / (1 - hp["dropout"])

    def noise(shape):
        return None if hp["deterministic"] else torch.randn(shape, generator=generator).to(sx.dtype).to(sx.device)

    stats = encode(theta, dropped(sx), sy, ways)  # [N, 2L]
    L, d = stats.shape[-1] // 2, sx.shape[-1]
    z, kl = gaussian(stats.unsqueeze(1).expand(ways, K, 2 * L), 0.0, noise((ways, K, L)))
    start, w = z, decode(theta, z, noise((ways, K, d)))
    loss = summed_ce(dropped(sx), sy, w)
    for _ in range(hp["inner_steps"]):
        (g,) = torch.autograd.grad(loss, z, create_graph=True)
        z = z - theta["inner_lr"] * g
        w = decode(theta, z, noise((ways, K, d)))
        loss = summed_ce(dropped(sx), sy, w)
    penalty = F.mse_loss(start, z.detach())
    for _ in range(hp["finetune_steps"]):
        (g,) = torch.autograd.grad(loss, w, create_graph=True)
        w = w - theta["finetune_lr"] * g
        loss = summed_ce(dropped(sx), sy, w)
    query = logits(dropped(qx), w)
    ce = F.cross_entropy(query, qy)
    accuracy = (query.argmax(-1) == qy).float().mean()
    return ce + hp["kl_weight"] * kl + hp["encoder_penalty_weight"] * penalty, accuracy


def l2_penalty(theta: dict, weight: float):
    return weight * sum((theta[k] ** 2).sum() for k in WEIGHTS) / 2


def orthogonality(decoder, weight: float):
    """λ2 · mean((C − I)²), C the correlation matrix of the decoder's rows (model.py get_orthogonality_regularizer)."""
    norms = decoder.norm(dim=1, keepdim=True) + 1e-32
    correlation = (decoder @ decoder.t()) / (norms @ norms.t())
    return weight * ((correlation - torch.eye(len(decoder), dtype=decoder.dtype, device=decoder.device)) ** 2).mean()


def clipped(grads: dict, value: float, norm: float) -> dict:
    """Each gradient clipped entrywise to ±value, then rescaled to norm at most (runner.py _clip_gradients)."""
    out = {}
    for k, g in grads.items():
        g = g.clamp(-value, value)
        n = g.norm()
        out[k] = g * (norm / n) if n > norm else g
    return out


class Learner(BaseLearner):
    def __init__(self, model, params, hp, path):
        super().__init__(model, params, hp, path)
        self.optimizer = make_torch_optimizer(self.params, hp["meta_optimizer"])
        self.schedule = Schedule(hp)
        self.ways = model.module[0].out_features

    def step(self, tasks, iteration, generator):
        hp, theta = self.hp, self.params
        losses = [task_loss(theta, *tasks[i].tensors(), self.ways, hp, generator)[0] for i in range(len(tasks))]
        meta = torch.stack(losses).mean()
        total = meta + l2_penalty(theta, hp["l2_penalty_weight"]) + \
            orthogonality(theta["decoder"], hp["orthogonality_penalty_weight"])
        grads = dict(zip(theta, torch.autograd.grad(total, list(theta.values()))))
        if not torch.isfinite(total) or any(torch.isnan(g).any() for g in grads.values()):
            grads = {k: NAN_FALLBACK * p.detach() if k in WEIGHTS else torch.zeros_like(p) for k, p in theta.items()}
        self.apply_gradients(clipped(grads, hp["gradient_clip_value"], hp["gradient_clip_norm"]))
        return meta.item()


class Schedule:
    """Test-time inference: start() encodes the support set and adapts the codes (their means, no dropout), then
    each evaluation step is a fine-tuning step of the decoded weights at the learned rates; the evaluated model is
    the linear classifier with weight mean_k w_{c,k} (suite.algorithms.inner.scheduled_finetune calls it)."""

    def __init__(self, hp: dict):
        self.hp = hp

    def start(self, model, theta: dict, x, y) -> dict:
        ways = model.module[0].out_features
        K = len(x) // ways
        with torch.enable_grad():
            theta = {k: v.detach() for k, v in theta.items()}
            stats = encode(theta, x, y, ways)
            z = gaussian(stats.unsqueeze(1).expand(ways, K, stats.shape[-1]), 0.0, None)[0].detach()
            for _ in range(self.hp["inner_steps"]):
                z.requires_grad_(True)
                (g,) = torch.autograd.grad(summed_ce(x, y, decode(theta, z, None)), z)
                z = (z - theta["inner_lr"] * g).detach()
        return {"w": decode(theta, z, None).detach(), "finetune_lr": theta["finetune_lr"]}

    def at(self, model, params: dict, step: int) -> dict:
        return {"0.weight": params["w"].mean(1)}

    def gradient(self, model, params: dict, x, y, step: int, loss=None) -> dict:
        """The step's gradient of the support's summed cross-entropy w.r.t. the decoded weights (loss unused)."""
        with torch.enable_grad():
            w = params["w"].detach().requires_grad_(True)
            (g,) = torch.autograd.grad(summed_ce(x, y, w), w)
        return {"w": g}

    def update(self, model, params: dict, change: dict, step: int) -> dict:
        return {"w": params["w"] - params["finetune_lr"] * change["w"], "finetune_lr": params["finetune_lr"]}

"""Conv4 and its relatives: `layers` blocks of 3×3 convolution, batch norm and ReLU (downsampled by stride or
max-pool), then a linear head (Vinyals et al. 2016; MAML's and Reptile's Omniglot and Mini-ImageNet networks)."""
from __future__ import annotations

from suite.lazy import lazy
from suite.protocol.schema import Field

nn = lazy("torch.nn")

# Bump when a change alters its initialisation or forward pass (then regenerate tests/goldens/).
NUMERICS_VERSION = 1

FIELDS = {
    "in_channels": Field("positive_int"),
    "image_size": Field("positive_int"),
    "filters": Field("positive_int"),
    "layers": Field("positive_int"),
    "downsample": Field("str", choices=("stride", "max-pool", "max-pool-same"),
                        doc="stride-2 convolutions (MAML/Reptile Omniglot), or 2x2 max-pool (Mini-ImageNet) with TF's "
                            "'VALID' padding (MAML: 84→42→21→10→5) or its 'SAME' padding (supervised-reptile: "
                            "84→42→21→11→6)"),
    "batch_norm_eps": Field("positive_float", doc="TF's batch norm default is 1e-3, PyTorch's 1e-5"),
    "batch_norm_scale": Field("bool", doc="a learned BN scale γ: tf.contrib's batch_norm (MAML) has none, "
                                          "tf.layers' (Reptile) has one"),
    "batch_norm_adapted": Field("bool", doc="whether inner loops (training and test-time fine-tuning) update the "
                                            "batch-norm parameters; cbfinn/maml keeps them out of its fast weights"),
    "activation": Field("str", choices=("relu", "leaky-relu"), required=False,
                        doc="after each batch norm: ReLU, or leaky ReLU with slope 0.01 (F.leaky_relu's default, "
                            "which MAML++'s code applies); the claims written before this field existed say nothing "
                            "and mean ReLU, so their configuration (and hash) did not change"),
    "head": Field("str", choices=("flatten", "mean-pool"),
                  doc="features into the linear head: flattened maps (Reptile) or their spatial mean (MAML's "
                      "Omniglot code, tf.reduce_mean over height and width)"),
    "init": Field("str", choices=("pytorch", "glorot", "maml-code"),
                  doc="'pytorch' defaults; 'glorot' uniform weights and zero biases (tf.layers' default, Reptile); "
                      "'maml-code': Glorot convolutions, zero biases, a N(0, 1) head (cbfinn/maml "
                      "construct_conv_weights)"),
}


def check(config: dict, where: str):
    pass


def has_batch_norm(config: dict) -> bool:
    return True


def conv_blocks(config: dict) -> int:
    return config["layers"]


def not_adapted(config: dict, module) -> set[str]:
    from suite.models.layers import BatchNorm

    if config["batch_norm_adapted"]:
        return set()
    return {f"{name}.{p}" for name, m in module.named_modules() if isinstance(m, BatchNorm)
            for p, _ in m.named_parameters()}


def build(config: dict, in_dim: int, out_dim: int):
    from suite.models.layers import BatchNorm, SpatialMean

    blocks, channels, size = [], config["in_channels"], config["image_size"]
    stride = 2 if config["downsample"] == "stride" else 1
    for _ in range(config["layers"]):
        blocks += [nn.Conv2d(channels, config["filters"], 3, stride=stride, padding=1),
                   BatchNorm(config["filters"], config["batch_norm_eps"], config["batch_norm_scale"]),
                   nn.LeakyReLU() if config.get("activation") == "leaky-relu" else nn.ReLU()]
        if config["downsample"] != "stride":  # a partial last window is pooled over what it covers: TF's 'SAME'
            blocks.append(nn.MaxPool2d(2, ceil_mode=config["downsample"] == "max-pool-same"))
        channels = config["filters"]
        size = size // 2 if config["downsample"] == "max-pool" else (size + 1) // 2
    if config["head"] == "mean-pool":
        blocks += [SpatialMean(), nn.Linear(channels, out_dim)]
    else:
        blocks += [nn.Flatten(), nn.Linear(channels * size * size, out_dim)]
    module = nn.Sequential(*blocks)
    if config["init"] != "pytorch":
        for layer in module:
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)
        if config["init"] == "maml-code":
            nn.init.normal_(module[-1].weight, std=1.0)
    return module

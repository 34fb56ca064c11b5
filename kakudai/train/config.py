"""Typed training configuration: the single source of truth for a run.

A TOML file fills these dataclasses; ``--set section.key=value`` overrides
single values; the resolved config is written beside the run's checkpoints.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.pipeline import DegradeConfig


@dataclass
class ModelConfig:
    name: str = "ksr"
    args: dict[str, Any] = field(default_factory=dict)  # constructor args; scale comes from data.scales


@dataclass
class DataConfig:
    train_dirs: list[str] = field(default_factory=lambda: ["../shared/data/train"])
    val_dirs: list[str] = field(default_factory=lambda: ["../shared/data/bench/Set5"])
    scales: list[int] = field(default_factory=lambda: [3])  # several = multi-scale training
    patch_size: int = 48  # LR patch side (restoration: the patch side)
    batch_size: int = 16  # global batch, split across DDP ranks
    scale_aug: list[float] = field(default_factory=lambda: [1.0])  # VDSR-style HR downscales
    augment: bool = True  # flips and 90-degree rotations
    # Candidate positions per patch; the one with the most detail (largest LR standard
    # deviation) is kept. 1 = uniform sampling. Flat patches teach a small model little.
    patch_candidates: int = 1
    task: str = "sr"  # sr | restore (noise/JPEG degradations, scale 1)
    noise_sigma: list[float] = field(default_factory=lambda: [0.0, 0.0])  # uniform range, 0-255 units
    noise_gray_prob: float = 0.0  # fraction of patches made gray (gray noise)
    # Fraction of noisy patches clipped to [0, 1] and rounded to 8 bits after the noise,
    # as a saved noisy photo is (the rest keep the benchmark's unclipped float noise).
    noise_clip_prob: float = 0.0
    jpeg_quality: list[int] = field(default_factory=lambda: [0, 0])  # uniform range; 0 = no JPEG
    jpeg_prob: float = 0.0  # fraction of patches JPEG-compressed
    # >1 draws low qualities more often: q = lo + (hi - lo) * u**power, u ~ U(0, 1)
    jpeg_quality_power: float = 1.0
    jpeg_double_prob: float = 0.0  # of those, fraction compressed twice on a shifted grid
    # [lo, hi]: a random scale in [lo, hi] per batch (arbitrary-scale models); scales
    # are then the validation scales. Empty = the fixed scales above.
    continuous_scale: list[float] = field(default_factory=list)
    # With this probability a batch takes one of ``continuous_fixed`` instead (e.g. the
    # integer scales, where the model is compared with fixed-scale models).
    continuous_fixed: list[float] = field(default_factory=list)
    continuous_fixed_prob: float = 0.0
    # task = "sr": realistic LR (blur, resize, noise, JPEG in two stages; kakudai.data.pipeline)
    # instead of the benchmark's clean MATLAB bicubic. Off by default.
    degrade: DegradeConfig = field(default_factory=DegradeConfig)
    # task = "sr": a JPEG restorer (shipped name or .safetensors file) that cleans the LR
    # first, as the automatic route does at inference for an image read as a JPEG. Each
    # LR patch is then JPEG-compressed (4:2:0) at a quality drawn from ``jpeg_quality``
    # (``jpeg_quality_power``), cleaned by it at that quality and rounded to 8 bits; the
    # model learns to upscale what the restorer leaves. The patch is cut
    # ``cleaned_margin`` LR pixels larger on each side and cropped after cleaning, so the
    # restorer sees context as it does inside a whole image. Validation inputs with a
    # ``jpeg:Q`` step are cleaned at Q the same way. "" = no cleaning.
    cleaned_by: str = ""
    cleaned_margin: int = 16  # LR pixels of context around each patch for the restorer (cleaned_by)
    # Manga-like copies (kakudai.data.datasets.TrainPairs): this share of the training
    # images also gets a gray copy with its mid-tones as screentone (kakudai.ops.screentone)
    # of a period drawn from ``screentone_period``. 0 = none.
    screentone_share: float = 0.0
    screentone_period: list[float] = field(default_factory=lambda: [4.0, 10.0])  # [lo, hi] HR pixels
    # Every training image made gray (Pillow's "L", replicated to RGB) before anything
    # else, screentone copies included: a model for gray pages, as manga and scans are.
    gray: bool = False
    # Validation inputs (task = "sr"): "" is the benchmark LR, else a fixed chain such as
    # "jpeg:75" or "noise:10" applied after the shrink (kakudai.evaluation.degraded_lr).
    val_degrade: list[str] = field(default_factory=lambda: [""])


@dataclass
class OptimConfig:
    optimizer: str = "adam"  # adam | adamw
    lr: float = 5e-4
    min_lr: float = 1e-6
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0
    schedule: str = "cosine"  # cosine | step | constant
    # What the cosine runs over: "iterations", or "time": with max_minutes, whichever of
    # the iteration count and the time budget runs out first (a time-boxed run then ends
    # at min_lr instead of being cut mid-schedule).
    clock: str = "iterations"
    warmup: int = 0  # iterations of linear warm-up
    step_size: int = 100_000
    gamma: float = 0.5
    loss: str = "l1"  # l1 | log_l1 (scales weighed equally; trainer._loss) | l2 | charbonnier
    grad_clip: float = 0.0  # max global grad norm; 0 = off
    ema: float = 0.0  # EMA decay of weights (e.g. 0.999); 0 = off
    # "bf16": the model's forward pass under torch.autocast(bfloat16). On a CPU with
    # AVX512-BF16 a training step is ~1.5-2x faster (ESPCN 1.7x, KSR 2.1x, RED10 1.5x
    # measured here); weights, optimizer state, skips added in float32 and the loss
    # stay float32. Validation and inference always run in float32.
    amp: str = "off"
    # Ramp the EMA decay as min(ema, (1 + it) / (10 + it)): without it, the EMA of a
    # short run from a random start still holds 0.999^1000 = 37% of the initial weights
    # at iteration 1,000 (a RED10 denoiser validated 23.1 dB there, its raw weights 29.2).
    ema_warmup: bool = False
    # Learning-rate multiplier per parameter-name prefix ({body = 0.1}); 0 freezes them.
    lr_mult: dict[str, float] = field(default_factory=dict)
    # With data.cleaned_by: 0 keeps the restorer fixed (it only makes the inputs); > 0
    # trains it together with the upscaler at this multiple of the learning rate, the
    # loss on the upscaled output reaching it through its 8-bit rounding (straight
    # through), so the pair learns what the automatic route does as one network. The
    # trained restorer is saved beside the upscaler (``*_cleaner.safetensors``).
    cleaner_lr_mult: float = 0.0
    # ... and the weight of an L1 term between the restorer's output and the clean LR
    # patch, which keeps it a restorer of its own (and trains the colour a Y-only
    # upscaler never sees).
    cleaner_loss_weight: float = 0.0


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    iterations: int = 10_000
    log_every: int = 50
    val_every: int = 1000
    ckpt_every: int = 500
    seed: int = 0
    out_dir: str = "runs"
    name: str = ""  # run directory name; default: the config file's stem
    init_from: str = ""  # weights to start from (fine-tuning / warm restart); non-matching tensors are skipped
    threads: int = 0  # torch intra-op threads; 0 = torch's default
    max_minutes: float = 0.0  # stop (with a checkpoint) after this much training time, resumes included; 0 = no limit
    progress: bool = True

    @property
    def trains_cleaner(self) -> bool:
        """Whether the run trains its JPEG restorer (data.cleaned_by) with the upscaler."""
        return bool(self.data.cleaned_by) and self.optim.cleaner_lr_mult > 0


def _from_dict(cls, data: dict[str, Any]):
    names = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for k, v in data.items():
        if k not in names:
            raise KeyError(f"unknown config key {cls.__name__}.{k}")
        f = names[k]
        if dataclasses.is_dataclass(f.default_factory if f.default_factory is not dataclasses.MISSING else None):
            kwargs[k] = _from_dict(f.default_factory, v)  # type: ignore[arg-type]
        else:
            kwargs[k] = v
    return cls(**kwargs)


def _parse_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        lowered = text.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        return text


def apply_overrides(data: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Apply ``key=value`` overrides to a config dict in place (and return it).

    Keys are dotted (``optim.lr=1e-3``, ``model.args.width=64``); values are
    Python/TOML literals (``[2,3,4]``, ``true``, ``"name"``) or bare strings.
    """
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = _parse_value(value.strip())
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Read a TOML config (or the defaults) and apply ``key=value`` overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        with open(path, "rb") as f:
            data = tomllib.load(f)
        if not data.get("name"):
            data["name"] = Path(path).stem
    return _from_dict(TrainConfig, apply_overrides(data, overrides))


def load_run_config(run_dir: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """The resolved config a run saved (``RUN/config.json``), with overrides applied."""
    data = json.loads((Path(run_dir) / "config.json").read_text())
    return _from_dict(TrainConfig, apply_overrides(data, overrides))


def config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def save_config(cfg: TrainConfig, path: str | Path) -> None:
    """Write the resolved config as JSON (TOML has no writer in the stdlib)."""
    Path(path).write_text(json.dumps(config_to_dict(cfg), indent=2) + "\n")

"""The one Trainer: model + data + loss + optimizer, single process or DDP.

Run directory layout (``out_dir/name``)::

    config.json        the resolved TrainConfig
    log.jsonl          one JSON object per log/validation event
    last/              model.safetensors, ema.safetensors, state.pt  (resume point)
    best.safetensors   best validation PSNR so far (EMA weights when EMA is on)
    final.safetensors  weights at the end of the run
    plot.png           training loss and validation PSNR over iterations

Determinism: patches come from one numpy Generator seeded by ``seed`` and
shared by all ranks (each rank takes its slice of the global batch), the
learning rate is a pure function of the iteration, and the resume point holds
model, EMA, optimizer and RNG states, so N + N resumed steps equal 2N steps.
``state.pt`` is written by this trainer and read back with
``torch.load(weights_only=True)``, which refuses arbitrary objects.
"""

from __future__ import annotations

import copy
import json
import math
import os
import signal
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from ..checkpoint import save_model
from ..models.calling import model_forward, single_scale
from ..data.datasets import TrainPairs
from ..data.io import uint8_to_tensor
from ..ops.color import rgb_to_y
from ..registry import create_model
from .config import TrainConfig, save_config

__all__ = ["Trainer", "lr_at", "resolve_data_path"]

# Under DDP, how often (iterations) the ranks agree on stopping (time limit, Ctrl-C).
STOP_CHECK_EVERY = 16


def lr_at(it: int, cfg, time_frac: float = 0.0) -> float:
    """Learning rate at iteration ``it`` (0-based) for an OptimConfig and a run length.

    ``time_frac``: the share of the time budget (``max_minutes``) used so far; the
    cosine follows it when ``optim.clock = "time"`` and it is ahead of the iterations.
    """
    o = cfg.optim
    if o.clock not in ("iterations", "time"):
        raise ValueError(f"unknown optim.clock {o.clock!r} (iterations | time)")
    if o.warmup and it < o.warmup:
        return o.lr * (it + 1) / o.warmup
    if o.schedule == "constant":
        return o.lr
    if o.schedule == "step":
        return o.lr * (o.gamma ** (it // o.step_size))
    if o.schedule == "cosine":
        span = max(1, cfg.iterations - o.warmup)
        t = min(1.0, (it - o.warmup) / span)
        if o.clock == "time" and cfg.max_minutes:
            t = max(t, min(1.0, time_frac))
        return o.min_lr + 0.5 * (o.lr - o.min_lr) * (1 + math.cos(math.pi * t))
    raise ValueError(f"unknown schedule {o.schedule!r}")


def ema_decay(it: int, o) -> float:
    """EMA decay for the update after iteration ``it`` (0-based) of an OptimConfig."""
    return min(o.ema, (1 + it) / (10 + it)) if o.ema_warmup else o.ema


def resolve_data_path(p: str) -> str:
    """A data folder as given, or relative to the repository root if that exists.

    Default configs name ``../shared/data/...`` relative to the repository, so
    training works from any working directory of a checkout. A leading
    ``$KAKUDAI_CACHE`` is kakudai's cache folder on this machine (``cache_dir()``,
    set or not), where generated data such as ``python -m kakudai.data.art`` goes.
    """
    head, _, rest = p.replace("\\", "/").partition("/")
    if head == "$KAKUDAI_CACHE":
        from ..data.datasets import cache_dir
        return str(cache_dir() / rest)
    if os.path.isabs(p) or os.path.exists(p):
        return p
    repo = Path(__file__).resolve().parents[2]
    alt = repo / p
    return str(alt) if alt.exists() else p


def _loss(name: str, pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(objective to minimise, per-pixel error to log) for one batch.

    ``log_l1`` minimises log(L1): its gradient is L1's divided by the batch's own L1,
    which is what an average of per-scale PSNRs (a log of the error) asks for. With one
    random scale per batch (continuous-scale training), plain L1 lets the large scales,
    whose errors are several times larger, dominate the gradient; log(L1) weighs every
    scale equally. The logged value stays the plain L1 so runs remain comparable.
    """
    base = "l1" if name == "log_l1" else name
    if base == "l1":
        v = F.l1_loss(pred, target)
    elif base == "l2":
        v = F.mse_loss(pred, target)
    elif base == "charbonnier":
        v = torch.sqrt((pred - target) ** 2 + 1e-6).mean()
    else:
        raise ValueError(f"unknown loss {name!r}")
    return (torch.log(v + 1e-8) if name == "log_l1" else v), v


def _param_groups(model: nn.Module, lr_mult: dict[str, float]) -> list[dict[str, Any]]:
    """Optimizer groups by learning-rate multiplier: a parameter takes the multiplier
    of the longest prefix in ``lr_mult`` that names it or one of its parent modules
    ("body" matches body.0.conv1.weight, not body_end.weight); multiplier 0 freezes
    it (no gradient is computed, so a frozen encoder also costs no backward pass)."""
    groups: dict[float, list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        hits = [k for k in lr_mult if name == k or name.startswith(k + ".")]
        mult = float(lr_mult[max(hits, key=len)]) if hits else 1.0
        if mult == 0:
            p.requires_grad_(False)
        else:
            groups.setdefault(mult, []).append(p)
    return [{"params": ps, "lr_mult": m} for m, ps in groups.items()]


def _crop(a: np.ndarray, m: int) -> np.ndarray:
    """A batch (B, H, W, C) without ``m`` pixels on each side (contiguous)."""
    return np.ascontiguousarray(a[:, m:a.shape[1] - m, m:a.shape[2] - m])


def _remove_dir(d: Path) -> None:
    for f in d.iterdir():
        f.unlink()
    d.rmdir()


def _dist_info() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed() -> tuple[int, int]:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    return _dist_info()


class Trainer:
    """Builds everything from a :class:`TrainConfig` and runs the loop."""

    def __init__(self, cfg: TrainConfig, resume: str | os.PathLike | None = None):
        self.cfg = cfg
        self.rank, self.world = init_distributed()
        if cfg.data.batch_size % self.world:
            raise ValueError(f"batch_size {cfg.data.batch_size} not divisible by {self.world} ranks")
        if cfg.optim.amp not in ("off", "bf16"):
            raise ValueError(f"unknown optim.amp {cfg.optim.amp!r} (off | bf16)")
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) \
            if torch.cuda.is_available() and self.world > 1 else torch.device("cpu")

        self.run_dir = Path(resume) if resume else Path(cfg.out_dir) / (cfg.name or "run")
        torch.manual_seed(cfg.seed)
        args = dict(cfg.model.args)
        scales = list(cfg.data.scales)
        if cfg.data.task == "sr" and not cfg.data.continuous_scale:  # restorers are same-size
            args.setdefault("scale", scales[0] if len(scales) == 1 else scales)
        self.model = create_model(cfg.model.name, **args).to(self.device)
        self.channels = self.model.spec.channels
        if cfg.init_from:
            self._init_from(cfg.init_from)
        self.ema = copy.deepcopy(self.model).eval() if cfg.optim.ema > 0 else None
        if self.ema is not None:
            self.ema.requires_grad_(False)
        groups = _param_groups(self.model, cfg.optim.lr_mult)  # before DDP: may freeze some
        self.net: nn.Module = self.model
        if self.world > 1:
            multi = self.model.spec.multi_scale
            self.net = nn.parallel.DistributedDataParallel(self.model, find_unused_parameters=multi)
        self.cleaner, self.cleaner_ema, self.cleaner_net = self._load_cleaner()
        if self.joint:
            groups.append({"params": list(self.cleaner.parameters()), "lr_mult": cfg.optim.cleaner_lr_mult})
        o = cfg.optim
        opt_cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[o.optimizer]
        self.opt = opt_cls(groups, lr=o.lr, betas=tuple(o.betas),
                           weight_decay=o.weight_decay)
        self.rng = np.random.default_rng(cfg.seed)
        self.it = 0
        self.best_psnr = -math.inf
        self.train_s = 0.0  # wall seconds of training over all sessions of this run (checkpointed)
        self.time_frac = 0.0  # share of max_minutes used, as agreed by all ranks (optim.clock)
        self.history: list[dict[str, Any]] = []
        self._stop = False
        self.data = TrainPairs([resolve_data_path(d) for d in cfg.data.train_dirs],
                               scales if cfg.data.task == "sr" and not cfg.data.continuous_scale else [1],
                               cfg.data.scale_aug, verbose=self.rank == 0,
                               screentone=(cfg.data.screentone_share, *cfg.data.screentone_period),
                               gray=cfg.data.gray)
        if resume:
            self._load_state(self.run_dir / "last")

    @property
    def joint(self) -> bool:
        """Whether the JPEG restorer (data.cleaned_by) trains with the upscaler."""
        return self.cfg.trains_cleaner

    @property
    def cleaner_kept(self) -> nn.Module | None:
        """The restorer as validated and saved: its EMA when the run keeps one."""
        return self.cleaner_ema if self.cleaner_ema is not None else self.cleaner

    def _load_cleaner(self) -> tuple[nn.Module | None, nn.Module | None, nn.Module | None]:
        """(restorer, its EMA, what runs it in training) for data.cleaned_by; Nones without."""
        cfg = self.cfg
        if not cfg.data.cleaned_by:
            if cfg.optim.cleaner_lr_mult:
                raise ValueError("optim.cleaner_lr_mult needs data.cleaned_by")
            return None, None, None
        if cfg.data.task != "sr" or cfg.data.continuous_scale:
            raise ValueError("data.cleaned_by needs task = \"sr\" at fixed scales")
        from ..infer.restore import load_restorer
        cleaner = load_restorer("jpeg", resolve_data_path(cfg.data.cleaned_by))
        if not cfg.trains_cleaner:
            return cleaner.requires_grad_(False), None, None
        if not cleaner.spec.level_map:
            raise ValueError("training the restorer (optim.cleaner_lr_mult) needs one with a level plane")
        # Trained on colour patches: a gray companion would neither train nor be saved.
        cleaner._modules.pop("gray_companion", None)
        cleaner = cleaner.to(self.device, memory_format=torch.contiguous_format).train().requires_grad_(True)
        ema = copy.deepcopy(cleaner).eval().requires_grad_(False) if cfg.optim.ema > 0 else None
        net = nn.parallel.DistributedDataParallel(cleaner) if self.world > 1 else cleaner
        return cleaner, ema, net

    # ----------------------------------------------------------------- state
    def _init_from(self, path: str) -> None:
        from safetensors.torch import load_file
        src = load_file(resolve_data_path(path))
        own = self.model.state_dict()
        taken = {k: v for k, v in src.items() if k in own and own[k].shape == v.shape}
        self.model.load_state_dict(taken, strict=False)
        skipped = sorted(set(own) - set(taken))
        if self.rank == 0:
            print(f"initialised {len(taken)}/{len(own)} tensors from {path}"
                  + (f"; new: {', '.join(skipped)}" if skipped else ""))

    def save_checkpoint(self) -> None:
        if self.rank != 0:
            return
        last = self.run_dir / "last"
        tmp = self.run_dir / ".last.tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        meta = {"iteration": self.it, "run": self.cfg.name}
        save_model(self.model, tmp / "model.safetensors", extra=meta)
        if self.ema is not None:
            save_model(self.ema, tmp / "ema.safetensors", extra=meta)
        if self.joint:
            save_model(self.cleaner, tmp / "cleaner.safetensors", extra=meta)
            if self.cleaner_ema is not None:
                save_model(self.cleaner_ema, tmp / "cleaner_ema.safetensors", extra=meta)
        torch.save({"iteration": self.it, "optimizer": self.opt.state_dict(),
                    "rng": json.dumps(self.rng.bit_generator.state),
                    "torch_rng": torch.get_rng_state(), "best_psnr": self.best_psnr,
                    "train_s": self.train_s},
                   tmp / "state.pt")
        # Swap directories so an interruption never leaves a half-written resume point.
        old = self.run_dir / ".last.old"
        if old.exists():  # left by a crash between the two renames below; last/ is complete
            _remove_dir(old)
        if last.exists():
            last.rename(old)
        tmp.rename(last)
        if old.exists():
            _remove_dir(old)

    def _load_state(self, last: Path) -> None:
        from safetensors.torch import load_file
        if not (last / "state.pt").exists() and (last.parent / ".last.old" / "state.pt").exists():
            last = last.parent / ".last.old"  # interrupted between the checkpoint's two renames
        if not (last / "state.pt").exists():
            raise FileNotFoundError(f"{last}: no resume point (state.pt) in this run directory")
        self.model.load_state_dict(load_file(str(last / "model.safetensors")))
        if self.ema is not None and (last / "ema.safetensors").exists():
            self.ema.load_state_dict(load_file(str(last / "ema.safetensors")))
        if self.joint:
            self.cleaner.load_state_dict(load_file(str(last / "cleaner.safetensors")))
            if self.cleaner_ema is not None:
                self.cleaner_ema.load_state_dict(load_file(str(last / "cleaner_ema.safetensors")))
        st = torch.load(last / "state.pt", weights_only=True)
        self.opt.load_state_dict(st["optimizer"])
        self.rng.bit_generator.state = json.loads(st["rng"])
        torch.set_rng_state(st["torch_rng"])
        self.it = int(st["iteration"])
        self.best_psnr = float(st["best_psnr"])
        self.train_s = float(st.get("train_s", 0.0))
        logf = self.run_dir / "log.jsonl"
        if logf.exists() and self.rank == 0:  # the log is rank 0's alone
            self.history = [json.loads(x) for x in logf.read_text().splitlines() if x.strip()]
            self.history = [h for h in self.history if h.get("it", 0) <= self.it]
            logf.write_text("".join(json.dumps(h) + "\n" for h in self.history))

    def _log(self, rec: dict[str, Any]) -> None:
        if self.rank != 0:
            return
        self.history.append(rec)
        with open(self.run_dir / "log.jsonl", "a") as f:
            f.write(json.dumps(rec) + "\n")

    # ------------------------------------------------------------------ data
    def _batch(self, scale: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """This rank's slice of the global batch: (input, HR target, LR target) tensors.

        The input is the LR image, or, when the restorer trains too (:attr:`joint`), the
        restorer's input (JPEG-compressed LR with margin and level plane); the LR target
        (the clean LR patch, for ``optim.cleaner_loss_weight``) is None otherwise."""
        d = self.cfg.data
        if d.task == "sr":
            # Only this rank's patches are cut out (the same draws as the whole batch).
            per = d.batch_size // self.world
            part = (self.rank * per, (self.rank + 1) * per)
            margin = d.cleaned_margin if self.cleaner is not None else 0
            lr_u8, hr_u8 = self.data.sample(self.rng, d.batch_size, d.patch_size + 2 * margin, scale,
                                            d.augment, d.patch_candidates, part=part)
            if d.degrade.enabled:
                lr_u8 = self._degrade(hr_u8, scale)
            if self.joint:
                x, hr, lr_clean = self._jpeg_inputs(lr_u8, hr_u8, scale, margin, part)
                return x.to(self.device), hr.to(self.device), lr_clean.to(self.device)
            if self.cleaner is not None:
                lr_u8, hr_u8 = self._jpeg_cleaned(lr_u8, hr_u8, scale, margin, part)
            lr, hr = self._pair_tensors(lr_u8, hr_u8)
            return lr.to(self.device), hr.to(self.device), None
        from ..data.degrade import degrade_batch
        _, hr_u8 = self.data.sample(self.rng, d.batch_size, d.patch_size, scale, d.augment,
                                    d.patch_candidates)
        hr = uint8_to_tensor(hr_u8)
        lr, hr = degrade_batch(hr, self.rng, d, self.channels,
                               level_map=self.model.spec.level_map)
        return *self._rank_slice(lr, hr), None

    def _degrade(self, hr_u8: np.ndarray, scale: int) -> np.ndarray:
        """Realistic LR patches for this rank's HR patches (B, P, P, 3) uint8.

        One draw from the run's generator seeds the whole batch; patch n of the global
        batch gets its own generator from (seed, n), so every rank consumes the same
        draws and a patch's degradation does not depend on the number of ranks.
        """
        from ..data.pipeline import degrade_pair
        seed = int(self.rng.integers(2**63))
        first = self.rank * (self.cfg.data.batch_size // self.world)
        return np.stack([degrade_pair(hp, scale, np.random.default_rng([seed, first + n]), self.cfg.data.degrade)
                         for n, hp in enumerate(hr_u8)])

    def _jpeg_cleaned(self, lr_u8: np.ndarray, hr_u8: np.ndarray, scale: int, margin: int,
                      part: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """LR patches JPEG-compressed and cleaned by ``data.cleaned_by`` at their quality
        (see :class:`kakudai.train.config.DataConfig`), then both patches cropped by the
        margin. Qualities are drawn for the global batch, so ranks stay in step."""
        from ..data.degrade import jpeg_roundtrip
        from ..infer.restore import level_value, restore_array
        out = [restore_array(jpeg_roundtrip(patch, int(q), "4:2:0"), self.cleaner, level_value("jpeg", quality=int(q)))
               for patch, q in zip(lr_u8, self._jpeg_qualities(part))]
        return _crop(np.stack(out), margin), _crop(hr_u8, margin * scale)

    def _jpeg_qualities(self, part: tuple[int, int]) -> np.ndarray:
        """JPEG qualities for this rank's patches, drawn for the global batch (ranks stay in step)."""
        d = self.cfg.data
        lo, hi = (int(v) for v in d.jpeg_quality)
        u = self.rng.random(d.batch_size)[part[0]:part[1]]
        return np.rint(lo + (hi - lo) * u ** d.jpeg_quality_power).astype(int)

    def _jpeg_inputs(self, lr_u8: np.ndarray, hr_u8: np.ndarray, scale: int, margin: int,
                     part: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For a restorer that trains (:attr:`joint`): its input, the LR patches (margin
        included) JPEG-compressed at their quality with that quality's level plane; the HR
        target (Y for a Y-only upscaler) and the clean LR (RGB), cropped by the margin."""
        from ..data.degrade import jpeg_roundtrip
        from ..infer.restore import level_value
        qs = self._jpeg_qualities(part)
        jpg = uint8_to_tensor(np.stack([jpeg_roundtrip(p, int(q), "4:2:0") for p, q in zip(lr_u8, qs)]))
        levels = torch.tensor([level_value("jpeg", quality=int(q)) for q in qs], dtype=jpg.dtype)
        x = torch.cat([jpg, levels.view(-1, 1, 1, 1).expand(-1, 1, *jpg.shape[-2:])], dim=1)
        hr = uint8_to_tensor(_crop(hr_u8, margin * scale))
        return x, (rgb_to_y(hr) if self.channels == 1 else hr), uint8_to_tensor(_crop(lr_u8, margin))

    def _clean(self, x: torch.Tensor) -> torch.Tensor:
        """The training restorer's output for :meth:`_jpeg_inputs`' input, cropped by the
        margin and rounded to 8 bits as the route hands it on (the rounding passes the
        gradient straight through)."""
        m = self.cfg.data.cleaned_margin
        y = model_forward(self.cleaner, x, 1, net=self._in_amp(self.cleaner_net))
        y = y[:, :, m:y.shape[2] - m, m:y.shape[3] - m].clamp(0, 1)
        return y + (torch.round(y * 255) / 255 - y).detach()

    def _pair_tensors(self, lr_u8, hr_u8) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 (B, h, w, 3) batches -> float (B, C, h, w) in [0, 1]; Y for Y-only models."""
        lr = uint8_to_tensor(lr_u8)
        hr = uint8_to_tensor(hr_u8)
        if self.channels == 1:
            lr, hr = rgb_to_y(lr), rgb_to_y(hr)
        return lr, hr

    def _rank_slice(self, lr: torch.Tensor, hr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's share of the global batch, on the training device."""
        per = self.cfg.data.batch_size // self.world
        sl = slice(self.rank * per, (self.rank + 1) * per)
        return lr[sl].contiguous().to(self.device), hr[sl].contiguous().to(self.device)

    def _batch_continuous(self) -> tuple[torch.Tensor, torch.Tensor, float]:
        """This rank's slice of a batch at a random scale in ``data.continuous_scale``."""
        d = self.cfg.data
        if not self.model.spec.any_scale:
            raise ValueError(f"{self.cfg.model.name} has fixed scales; data.continuous_scale needs "
                             "a model that takes a scale (e.g. implicit)")
        lr_u8, hr_u8, scale = self.data.sample_continuous(self.rng, d.batch_size, d.patch_size,
                                                          d.continuous_scale, d.augment,
                                                          d.continuous_fixed, d.continuous_fixed_prob)
        lr, hr = self._rank_slice(*self._pair_tensors(lr_u8, hr_u8))
        return lr, hr, scale

    def _forward(self, lr: torch.Tensor, scale: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(the upscaled output, the restorer's output when it trains, else None)."""
        net = self._in_amp(self.net)
        if not self.joint:
            return model_forward(self.model, lr, scale, net=net), None
        cleaned = self._clean(lr)
        inp = rgb_to_y(cleaned) if self.channels == 1 else cleaned
        return model_forward(self.model, inp, scale, net=net), cleaned

    def _in_amp(self, net: nn.Module) -> Callable[..., torch.Tensor]:
        """``net`` run under the run's autocast (optim.amp), float32 out. Only the network
        runs under it: model_forward's pre-upsampling stays float32."""
        def run(x: torch.Tensor, **kw: Any) -> torch.Tensor:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.optim.amp == "bf16"):
                return net(x, **kw).float()
        return run

    # ------------------------------------------------------------ validation
    def validate(self) -> dict[str, Any]:
        from ..evaluation import after_cleaning, evaluate_folder
        model = self.ema if self.ema is not None else self.model
        cleaner = self.cleaner_kept
        if cleaner is not None:
            cleaner.eval()
        rec: dict[str, Any] = {"it": self.it, "kind": "val"}
        scores = []
        for s in (self.cfg.data.scales if self.cfg.data.task == "sr" else [1]):
            net = single_scale(model, s)
            for d in self.cfg.data.val_dirs:
                if self.cfg.data.task != "sr":
                    from ..evaluation import evaluate_restoration
                    r = evaluate_restoration(net, resolve_data_path(d), self.cfg.data)
                    rec[f"{r['name']}_x{s}"] = round(r["psnr"], 4)
                    scores.append(r["psnr"])
                    continue
                for spec in self.cfg.data.val_degrade:
                    r = evaluate_folder(after_cleaning(net, cleaner, spec, s), resolve_data_path(d), s,
                                        with_ssim=False, degrade=spec)
                    rec[f"{r['name']}_x{s}" + (f"_{spec}" if spec else "")] = round(r["psnr"], 4)
                    scores.append(r["psnr"])
        model.train()
        if self.joint:
            self.cleaner.train()
        rec["psnr"] = float(np.mean(scores))
        return rec

    # ------------------------------------------------------------------ loop
    def _handle_signal(self, signum, frame) -> None:  # noqa: ARG002
        self._stop = True

    def _all_ranks_any(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is true on any rank.

        Ranks must leave the loop at the same iteration, or the ones still
        training wait forever in DDP's gradient all-reduce.
        """
        if self.world == 1:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def _from_rank0(self, value: float) -> float:
        """Rank 0's ``value`` on every rank."""
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.broadcast(t, src=0)
        return float(t.item())

    def _sum_over_ranks(self, *values: float) -> list[float]:
        """Each value summed over all ranks."""
        if self.world == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def _mean_over_ranks(self, total: float, count: int) -> float:
        """Mean of a per-rank running sum, over all ranks (each rank sees only its slice)."""
        total, count = self._sum_over_ranks(total, float(count))
        return total / max(count, 1)

    def fit(self, steps: int | None = None) -> Path:
        """Train until ``cfg.iterations`` (or for at most ``steps`` more iterations,
        then pause with a resume point, as Ctrl-C does). Returns the run directory."""
        cfg = self.cfg
        if self.rank == 0:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_config(cfg, self.run_dir / "config.json")
        old_int = signal.signal(signal.SIGINT, self._handle_signal)
        old_term = signal.signal(signal.SIGTERM, self._handle_signal)
        bar = None
        if self.rank == 0 and cfg.progress:
            from tqdm import tqdm
            bar = tqdm(total=cfg.iterations, initial=self.it, unit="it", dynamic_ncols=True,
                       desc=cfg.name or "train")
        t_start, cpu_start = time.time(), time.process_time()
        train_s0 = self.train_s
        t_log, n_patches, loss_acc, loss_n = time.time(), 0, 0.0, 0
        scales = cfg.data.scales if cfg.data.task == "sr" else [1]
        stop_at = cfg.iterations if steps is None else min(cfg.iterations, self.it + steps)
        ended = "done"  # done | time | interrupted | paused
        self.model.train()
        try:
            while self.it < stop_at:
                lr_clean = None
                if cfg.data.continuous_scale:
                    lr, hr, scale = self._batch_continuous()
                else:
                    scale = scales[self.it % len(scales)]
                    lr, hr, lr_clean = self._batch(scale)
                for g in self.opt.param_groups:
                    g["lr"] = lr_at(self.it, cfg, self.time_frac) * g.get("lr_mult", 1.0)
                pred, cleaned = self._forward(lr, scale)
                loss, err = _loss(cfg.optim.loss, pred, hr)
                if cleaned is not None and cfg.optim.cleaner_loss_weight:
                    loss = loss + cfg.optim.cleaner_loss_weight * F.l1_loss(cleaned, lr_clean)
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.optim.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_([p for g in self.opt.param_groups for p in g["params"]],
                                                   cfg.optim.grad_clip)
                self.opt.step()
                if self.ema is not None:
                    step = 1.0 - ema_decay(self.it, cfg.optim)
                    pairs = [(self.ema, self.model)] + ([(self.cleaner_ema, self.cleaner)] if self.joint else [])
                    with torch.no_grad():
                        for ema, live in pairs:
                            for pe, pm in zip(ema.parameters(), live.parameters()):
                                pe.lerp_(pm, step)
                self.it += 1
                loss_v = float(err.detach())
                if not math.isfinite(loss_v):
                    raise FloatingPointError(f"loss became {loss_v} at iteration {self.it}")
                loss_acc += loss_v
                loss_n += 1
                n_patches += cfg.data.batch_size
                if bar is not None:
                    bar.update(1)
                    if self.it % 10 == 0:
                        bar.set_postfix(loss=f"{loss_v:.4f}", best=f"{self.best_psnr:.3f}")
                if self.it % cfg.log_every == 0:
                    mean_loss = self._mean_over_ranks(loss_acc, loss_n)
                    dt = time.time() - t_log
                    self._log({"it": self.it, "kind": "train", "loss": mean_loss,
                               "lr": lr_at(self.it - 1, cfg, self.time_frac), "patches_per_s": n_patches / dt,
                               "elapsed_s": time.time() - t_start,
                               # CPU seconds of all ranks (all their threads) since this
                               # session started: on a shared machine, the compute a run got.
                               "cpu_s": self._sum_over_ranks(time.process_time() - cpu_start)[0],
                               "ranks": self.world})
                    t_log, n_patches, loss_acc, loss_n = time.time(), 0, 0.0, 0
                if cfg.val_every and self.it % cfg.val_every == 0 and self.rank == 0:
                    self._validate_and_keep_best(bar)
                if cfg.ckpt_every and self.it % cfg.ckpt_every == 0:
                    self.train_s = train_s0 + time.time() - t_start
                    self.save_checkpoint()
                # Ranks agree on stopping every STOP_CHECK_EVERY iterations only: the
                # extra all-reduce each step cost a small model a few % of its DDP step time.
                if self.world > 1 and self.it % STOP_CHECK_EVERY:
                    continue
                # The budget is the run's training time, resumes included: a resumed
                # run finishes its budget rather than starting a new one.
                used = (train_s0 + time.time() - t_start) / (cfg.max_minutes * 60 or 1)
                over = bool(cfg.max_minutes) and used > 1
                if cfg.optim.clock == "time" and cfg.max_minutes:
                    # Rank 0's clock for everyone: ranks must use the same learning rate.
                    self.time_frac = self._from_rank0(used)
                if self._all_ranks_any(over or self._stop):
                    ended = "interrupted" if self._all_ranks_any(self._stop) else "time"
                    if ended == "time" and self.rank == 0:
                        (bar.write if bar is not None else print)(
                            f"time limit of {cfg.max_minutes} min reached at iteration {self.it}")
                    break
            else:
                ended = "done" if self.it >= cfg.iterations else "paused"
        finally:
            signal.signal(signal.SIGINT, old_int)
            signal.signal(signal.SIGTERM, old_term)
            if bar is not None:
                bar.close()
        if self.rank == 0:
            # Validate before the checkpoint so the resume point knows the best score.
            if ended in ("done", "time") and cfg.val_every and self.it % cfg.val_every != 0:
                self._validate_and_keep_best(None)
        self.train_s = train_s0 + time.time() - t_start
        self.save_checkpoint()
        if self.rank == 0:
            if ended in ("interrupted", "paused"):
                print(f"{ended}: checkpoint saved at iteration {self.it} in {self.run_dir / 'last'}")
            final = self.ema if self.ema is not None else self.model
            save_model(final, self.run_dir / "final.safetensors",
                       extra={"iteration": self.it, "run": cfg.name})
            if self.joint:
                save_model(self.cleaner_kept, self.run_dir / "final_cleaner.safetensors",
                           extra={"iteration": self.it, "run": cfg.name})
            try:
                from .plot import plot_history
                plot_history(self.history, self.run_dir / "plot.png")
            except Exception as e:  # the plot is a convenience; say why it is missing
                print(f"warning: no plot ({e})")
        if self.world > 1:
            dist.barrier()
        return self.run_dir

    def _validate_and_keep_best(self, bar) -> None:
        rec = self.validate()
        rec["elapsed_s"] = None
        self._log(rec)
        msg = f"it {self.it}: val " + " ".join(f"{k}={v}" for k, v in rec.items()
                                                if k not in ("it", "kind", "elapsed_s"))
        (bar.write if bar is not None else print)(msg)
        if rec["psnr"] > self.best_psnr:
            self.best_psnr = rec["psnr"]
            model = self.ema if self.ema is not None else self.model
            save_model(model, self.run_dir / "best.safetensors",
                       extra={"iteration": self.it, "val": rec, "run": self.cfg.name})
            if self.joint:
                save_model(self.cleaner_kept, self.run_dir / "best_cleaner.safetensors",
                           extra={"iteration": self.it, "val": rec, "run": self.cfg.name})

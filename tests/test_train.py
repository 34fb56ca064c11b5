"""The Trainer on tiny generated images: every trainable model learns, the run
directory is complete, and resuming (paused or Ctrl-C) is bit-exact."""

from __future__ import annotations

import json
import math
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file

import kakudai
from kakudai.train.config import TrainConfig, load_config
from kakudai.train.trainer import Trainer, _loss, ema_decay, lr_at


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth random colour texture (uint8 H x W x 3): a sum of random
    sinusoids, so that SR has something learnable beyond bicubic."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3))
    for _ in range(6):
        f = rng.uniform(0.03, 0.35, size=2)
        phase = rng.uniform(0, 2 * np.pi)
        amp = rng.uniform(0.2, 1.0, size=3)
        img += amp * np.sin(f[0] * yy + f[1] * xx + phase)[..., None]
    img = (img - img.min()) / (img.max() - img.min())
    return np.round(img * 255).astype(np.uint8)


def write_tiny_dataset(root: Path, seed: int = 0) -> tuple[Path, Path]:
    """train/ with three 64x56 textures and val/ with two 48x48 ones (PNG)."""
    rng = np.random.default_rng(seed)
    train, val = root / "train", root / "val"
    train.mkdir(parents=True)
    val.mkdir(parents=True)
    for i in range(3):
        Image.fromarray(_texture(rng, 64, 56)).save(train / f"t{i}.png")
    for i in range(2):
        Image.fromarray(_texture(rng, 48, 48)).save(val / f"v{i}.png")
    return train, val


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> tuple[Path, Path]:
    return write_tiny_dataset(tmp_path_factory.mktemp("tinydata"))


def tiny_config(data: tuple[Path, Path], out: Path, model: str, scales: list[int],
                *overrides: str) -> TrainConfig:
    train, val = data
    return load_config(None, [
        f"model.name={model!r}", f"data.train_dirs={[str(train)]!r}", f"data.val_dirs={[str(val)]!r}",
        f"data.scales={scales!r}", "data.patch_size=8", "data.batch_size=4", "data.scale_aug=[1.0]",
        "optim.lr=1e-3", "optim.schedule='constant'", "optim.loss='l1'",
        "iterations=20", "log_every=1", "val_every=20", "ckpt_every=0", "seed=0",
        f"out_dir={str(out)!r}", "name='run'", "progress=False", *overrides])


def _train_losses(run: Path) -> list[float]:
    rows = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if r["kind"] == "train"]


def _trainable() -> list[str]:
    return [n for n in kakudai.list_models()
            if any(True for _ in kakudai.create_model(n, scale=2).parameters())]


@pytest.mark.parametrize("name", _trainable())
def test_twenty_steps_reduce_the_loss(name: str, tiny_data, tmp_path) -> None:
    scale = 2
    cfg = tiny_config(tiny_data, tmp_path, name, [scale])
    run = Trainer(cfg).fit()
    losses = _train_losses(run)
    assert len(losses) == 20 and all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-5:]) < 0.9 * np.mean(losses[:5]), losses
    # The run directory format.
    for f in ("config.json", "log.jsonl", "plot.png", "best.safetensors", "final.safetensors",
              "last/model.safetensors", "last/state.pt"):
        assert (run / f).exists(), f
    assert json.loads((run / "config.json").read_text())["model"]["name"] == name
    best = kakudai.load_model(run / "best.safetensors")
    meta = best.weights_meta["extra"]
    assert meta["iteration"] == 20 and "val_x2" in meta["val"]
    # The validation score is a real evaluation of the trained network.
    assert 10 < meta["val"]["psnr"] < 80


def test_multiscale_training_uses_every_tail(tiny_data, tmp_path) -> None:
    cfg = tiny_config(tiny_data, tmp_path, "ksr-fast", [2, 3], "model.args={'width': 8, 'blocks': 1}",
                      "iterations=4", "val_every=4")
    trainer = Trainer(cfg)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.fit()
    after = trainer.model.state_dict()
    for tail in ("tails.x2.weight", "tails.x3.weight"):
        assert not torch.equal(before[tail], after[tail]), tail
    val = [json.loads(x) for x in (trainer.run_dir / "log.jsonl").read_text().splitlines()][-1]
    assert {"val_x2", "val_x3"} <= set(val)


def test_log_l1_weighs_each_batch_by_its_own_error() -> None:
    """log(L1)'s gradient is L1's divided by L1: a batch with 4x the error (a larger
    scale) pulls no harder than a small one; the logged value is the plain L1."""
    g = torch.Generator().manual_seed(0)
    target = torch.rand(2, 1, 8, 8, generator=g)
    noise = torch.randn(2, 1, 8, 8, generator=g)
    grads = {}
    for name in ("l1", "log_l1"):
        for amp in (0.01, 0.04):
            pred = (target + amp * noise).requires_grad_(True)
            objective, logged = _loss(name, pred, target)
            objective.backward()
            grads[name, amp] = pred.grad
            assert logged.item() == pytest.approx(F.l1_loss(pred, target).item())
    for amp in (0.01, 0.04):
        l1 = F.l1_loss(target + amp * noise, target).item()
        assert torch.allclose(grads["log_l1", amp], grads["l1", amp] / l1, rtol=1e-4)
    # Same sign pattern, so plain L1's gradient has the same norm at both errors ...
    assert grads["l1", 0.01].norm() == pytest.approx(grads["l1", 0.04].norm())
    # ... while log(L1) pulls the small-error batch 4x harder.
    ratio = grads["log_l1", 0.01].norm() / grads["log_l1", 0.04].norm()
    assert ratio.item() == pytest.approx(4.0, rel=1e-3)
    with pytest.raises(ValueError, match="unknown loss"):
        _loss("l3", target, target)


@pytest.mark.parametrize("name", ["espcn", "ksr", "srcnn"])
def test_bf16_autocast_trains_and_keeps_float32_weights(name: str, tiny_data, tmp_path) -> None:
    fp32 = Trainer(tiny_config(tiny_data, tmp_path, name, [2], "name='fp32'")).fit()
    bf16 = Trainer(tiny_config(tiny_data, tmp_path, name, [2], "name='bf16'", "optim.amp='bf16'")).fit()
    lf, lb = _train_losses(fp32), _train_losses(bf16)
    assert np.mean(lb[-5:]) < 0.9 * np.mean(lb[:5]), lb
    assert lf != lb  # the forward really ran in bfloat16
    assert abs(lf[0] - lb[0]) < 0.05 * lf[0]  # ... and computed the same thing
    assert all(t.dtype == torch.float32 for t in load_file(str(bf16 / "final.safetensors")).values())
    with pytest.raises(ValueError, match="optim.amp"):
        Trainer(tiny_config(tiny_data, tmp_path, name, [2], "optim.amp='fp16'"))


def _resume_config(data, out: Path, name: str) -> TrainConfig:
    # Cosine schedule, EMA, gradient clipping and two scales: all of it state a
    # resume must restore.
    return tiny_config(data, out, "ksr-fast", [2, 3], "model.args={'width': 8, 'blocks': 1}",
                       "optim.schedule='cosine'", "optim.ema=0.9", "optim.grad_clip=0.5",
                       "optim.warmup=2", "iterations=8", "val_every=3", f"name={name!r}")


def _assert_same_weights(a: Path, b: Path) -> None:
    for f in ("last/model.safetensors", "last/ema.safetensors", "final.safetensors"):
        ta, tb = load_file(str(a / f)), load_file(str(b / f))
        assert ta.keys() == tb.keys()
        for k in ta:
            assert torch.equal(ta[k], tb[k]), (f, k)


def test_resume_is_bit_exact(tiny_data, tmp_path) -> None:
    full = Trainer(_resume_config(tiny_data, tmp_path, "full")).fit()

    first = Trainer(_resume_config(tiny_data, tmp_path, "paused"))
    first.fit(steps=4)
    assert first.it == 4
    part = first.run_dir
    second = Trainer(_resume_config(tiny_data, tmp_path, "paused"), resume=part)
    assert second.it == 4
    # The training clock (optim.clock = "time") carries over a resume.
    assert first.train_s > 0 and second.train_s == first.train_s
    second.fit()
    _assert_same_weights(full, part)
    assert _train_losses(full) == _train_losses(part)
    st_full = torch.load(full / "last" / "state.pt", weights_only=True)
    st_part = torch.load(part / "last" / "state.pt", weights_only=True)
    assert st_full["iteration"] == st_part["iteration"] == 8
    assert st_full["best_psnr"] == st_part["best_psnr"]
    assert st_part["train_s"] > first.train_s


def test_time_budget_counts_training_time_before_a_resume(tiny_data, tmp_path) -> None:
    # max_minutes is the run's budget, not each session's: a run resumed with its
    # budget spent stops after one step instead of starting the budget again.
    first = Trainer(_resume_config(tiny_data, tmp_path, "budget"))
    first.fit(steps=4)
    state_path = first.run_dir / "last" / "state.pt"
    state = torch.load(state_path, weights_only=True)
    state["train_s"] = 120.0  # two minutes already spent
    torch.save(state, state_path)
    cfg = _resume_config(tiny_data, tmp_path, "budget")
    cfg.max_minutes = 1.0
    second = Trainer(cfg, resume=first.run_dir)
    second.fit()
    assert second.it == 5


def test_ctrl_c_saves_a_resume_point_and_cli_resume_finishes(tiny_data, tmp_path, monkeypatch) -> None:
    full = Trainer(_resume_config(tiny_data, tmp_path, "full")).fit()

    trainer = Trainer(_resume_config(tiny_data, tmp_path, "interrupted"))
    batch = trainer._batch

    def batch_then_ctrl_c(scale: int):
        if trainer.it == 2:  # Ctrl-C arrives during iteration 3
            signal.raise_signal(signal.SIGINT)
        return batch(scale)

    monkeypatch.setattr(trainer, "_batch", batch_then_ctrl_c)
    run = trainer.fit()
    assert torch.load(run / "last" / "state.pt", weights_only=True)["iteration"] == 3

    from kakudai.cli import main
    assert main(["train", "--resume", str(run)]) == 0
    _assert_same_weights(full, run)


def test_resume_without_checkpoint_says_so(tiny_data, tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no resume point"):
        Trainer(_resume_config(tiny_data, tmp_path, "x"), resume=tmp_path / "empty")


def test_lr_schedules() -> None:
    cfg = load_config(None, ["iterations=100", "optim.lr=1e-3", "optim.min_lr=1e-5",
                             "optim.warmup=10", "optim.schedule='cosine'"])
    assert lr_at(0, cfg) == pytest.approx(1e-4)
    assert lr_at(10, cfg) == pytest.approx(1e-3)
    assert lr_at(100, cfg) == pytest.approx(1e-5)
    assert lr_at(55, cfg) == pytest.approx(1e-5 + 0.5 * (1e-3 - 1e-5))
    step = load_config(None, ["optim.schedule='step'", "optim.step_size=10", "optim.gamma=0.5",
                              "optim.lr=1.0"])
    assert [lr_at(i, step) for i in (0, 9, 10, 25)] == [1.0, 1.0, 0.5, 0.25]
    # optim.clock = "time": the cosine follows whichever budget is further along.
    timed = load_config(None, ["iterations=100", "optim.lr=1e-3", "optim.min_lr=0.0",
                               "optim.clock='time'", "max_minutes=10"])
    assert lr_at(0, timed, 0.5) == pytest.approx(5e-4)      # half the time used
    assert lr_at(75, timed, 0.5) == pytest.approx(lr_at(75, timed, 0.0))  # iterations ahead
    assert lr_at(10, timed, 1.7) == pytest.approx(0.0)      # over budget: min_lr
    by_its = load_config(None, ["iterations=100", "optim.lr=1e-3", "max_minutes=10"])
    assert lr_at(0, by_its, 0.5) == pytest.approx(1e-3)     # the default clock ignores time
    with pytest.raises(ValueError, match="clock"):
        lr_at(0, load_config(None, ["optim.clock='wall'"]))


def test_shipped_configs_load() -> None:
    root = Path(__file__).resolve().parents[1] / "configs"
    for f in sorted(root.glob("*.toml")):
        cfg = load_config(f)
        assert cfg.model.name in kakudai.list_models(), f
        assert cfg.name == f.stem or cfg.name, f


def test_detail_sampling_prefers_textured_patches(tmp_path) -> None:
    """patch_candidates > 1 keeps the most detailed of several positions: on an image
    that is flat on one half and textured on the other, most patches come from the texture."""
    from kakudai.data.datasets import TrainPairs
    rng = np.random.default_rng(0)
    img = np.full((64, 128, 3), 128, np.uint8)
    img[:, 64:] = _texture(rng, 64, 64)
    Image.fromarray(img).save(tmp_path / "half.png")
    pairs = TrainPairs([tmp_path], [2], verbose=False)

    def textured_share(candidates: int) -> float:
        lr, _ = pairs.sample(np.random.default_rng(1), 200, 8, 2, augment=False, candidates=candidates)
        return float(np.mean([p.std() > 1.0 for p in lr]))

    uniform, picky = textured_share(1), textured_share(4)
    assert 0.35 < uniform < 0.75  # about the textured area's share of positions
    assert picky > 0.95 > uniform


@pytest.mark.parametrize("candidates", [1, 4])
def test_sample_part_is_the_slice_of_the_whole_batch(tmp_path, candidates) -> None:
    """A DDP rank cuts out only its share: equal to that slice of the whole batch,
    with the generator left where the whole batch leaves it."""
    from kakudai.data.datasets import TrainPairs
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(_texture(rng, 40 + 8 * i, 56)).save(tmp_path / f"t{i}.png")
    pairs = TrainPairs([tmp_path], [2], verbose=False)
    g_all, g_part = np.random.default_rng(5), np.random.default_rng(5)
    lr, hr = pairs.sample(g_all, 6, 8, 2, candidates=candidates)
    lr_p, hr_p = pairs.sample(g_part, 6, 8, 2, candidates=candidates, part=(2, 5))
    assert np.array_equal(lr_p, lr[2:5]) and np.array_equal(hr_p, hr[2:5])
    assert g_all.integers(1 << 30) == g_part.integers(1 << 30)


def test_training_with_detail_sampling(tiny_data, tmp_path) -> None:
    cfg = tiny_config(tiny_data, tmp_path, "espcn", [2], "data.patch_candidates=3")
    Trainer(cfg).fit()
    losses = _train_losses(tmp_path / "run")
    assert len(losses) == 20 and all(math.isfinite(v) for v in losses)


def test_ema_warmup_follows_the_recent_weights(tiny_data, tmp_path) -> None:
    o = load_config(None, ["optim.ema=0.999", "optim.ema_warmup=true"]).optim
    assert ema_decay(0, o) == pytest.approx(0.1) and ema_decay(10**6, o) == 0.999
    assert ema_decay(0, load_config(None, ["optim.ema=0.999"]).optim) == 0.999

    def ema_gap(warmup: bool) -> float:
        cfg = _resume_config(tiny_data, tmp_path, f"warmup_{warmup}")
        cfg.optim.ema, cfg.optim.ema_warmup = 0.999, warmup
        t = Trainer(cfg)
        t.fit()
        return max(float((a - b).abs().max())
                   for a, b in zip(t.ema.state_dict().values(), t.model.state_dict().values()))
    # After 8 steps, the ramped EMA sits near the trained weights; the plain one near the start.
    assert ema_gap(True) < 0.5 * ema_gap(False)


def test_cleaned_by_trains_on_what_the_restorer_leaves(tiny_data, tmp_path) -> None:
    """data.cleaned_by: each LR patch is JPEG-compressed at its drawn quality and cleaned
    by the restorer at that quality, with a margin cut around it and cropped away after
    (HR cropped to match); validation inputs with a jpeg:Q step go through the restorer
    at Q, then the model."""
    from kakudai.checkpoint import save_model
    from kakudai.data.degrade import jpeg_roundtrip
    from kakudai.evaluation import after_cleaning, from_tensor
    from kakudai.infer.restore import level_value, restore
    from kakudai.infer.upscale import super_resolve

    torch.manual_seed(0)
    cleaner = kakudai.create_model("unet", channels=3, widths=(4, 8), blocks=1, level_map=True)
    with torch.no_grad():
        for p in cleaner.parameters():
            p.add_(0.05 * torch.randn_like(p))  # not the identity it starts as
    save_model(cleaner, tmp_path / "cleaner.safetensors")
    cfg = tiny_config(tiny_data, tmp_path, "ksr", [2], f"data.cleaned_by={str(tmp_path / 'cleaner.safetensors')!r}",
                      "data.cleaned_margin=4", "data.jpeg_quality=[40, 40]", "data.val_degrade=['', 'jpeg:60']",
                      "iterations=4", "val_every=4")
    trainer = Trainer(cfg)
    rng = np.random.default_rng(1)
    lr = rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    hr = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    got_lr, got_hr = trainer._jpeg_cleaned(lr, hr, 2, 4, (0, 2))
    assert got_lr.shape == (2, 8, 8, 3) and got_hr.shape == (2, 16, 16, 3)
    assert np.array_equal(got_hr, hr[:, 8:24, 8:24])
    for n in range(2):
        x = kakudai.data.io.uint8_to_tensor(jpeg_roundtrip(lr[n], 40, "4:2:0"))
        want = restore(trainer.cleaner, x, level_value("jpeg", quality=40), out_dtype=torch.uint8)
        assert np.array_equal(got_lr[n], want[0].permute(1, 2, 0).numpy()[4:12, 4:12])
    assert not np.array_equal(got_lr[0], lr[0, 4:12, 4:12])

    a, b, _ = trainer._batch(2)
    assert tuple(a.shape) == (4, 1, 8, 8) and tuple(b.shape) == (4, 1, 16, 16)
    net = trainer.model.eval()
    assert after_cleaning(net, trainer.cleaner, "", 2) is net
    run = after_cleaning(net, trainer.cleaner, "blur:0.5,jpeg:60", 2)
    img = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    x = restore(trainer.cleaner, kakudai.data.io.uint8_to_tensor(img), level_value("jpeg", quality=60),
                out_dtype=torch.uint8)
    assert np.array_equal(run(img), from_tensor(super_resolve(net, x, 2, out_dtype=torch.uint8)))
    trainer.model.train()
    out = trainer.fit()
    vals = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines() if '"val"' in x]
    assert "val_x2_jpeg:60" in vals[-1] and "val_x2" in vals[-1]


def _joint_config(data, out: Path, cleaner: Path, name: str, weight: float) -> TrainConfig:
    return tiny_config(data, out, "ksr", [2], f"data.cleaned_by={str(cleaner)!r}", "data.cleaned_margin=4",
                       "data.jpeg_quality=[30, 60]", "data.val_degrade=['jpeg:50']", "optim.ema=0.9",
                       "optim.schedule='cosine'", "optim.grad_clip=0.5", "optim.cleaner_lr_mult=0.5",
                       f"optim.cleaner_loss_weight={weight}", "iterations=6", "val_every=3", f"name={name!r}")


def test_joint_cleaner_trains_through_the_upscaler_and_resumes(tiny_data, tmp_path) -> None:
    """optim.cleaner_lr_mult > 0: the restorer's input is the JPEG LR with its level plane
    and margin; the upscaler's loss alone moves the restorer (through the 8-bit rounding);
    its weights, EMA and optimizer state resume bit-exactly, and it is saved beside the
    upscaler as a loadable restorer."""
    from kakudai.checkpoint import load_weights_file, save_model
    from kakudai.infer.restore import level_value

    torch.manual_seed(0)
    cleaner = kakudai.create_model("unet", channels=3, widths=(4, 8), blocks=1, level_map=True)
    path = save_model(cleaner, tmp_path / "cleaner.safetensors")
    start = {k: v.clone() for k, v in cleaner.state_dict().items()}

    t = Trainer(_joint_config(tiny_data, tmp_path, path, "shapes", 0.0))
    x, hr, lr_clean = t._batch(2)
    assert tuple(x.shape) == (4, 4, 16, 16) and tuple(hr.shape) == (4, 1, 16, 16)
    assert tuple(lr_clean.shape) == (4, 3, 8, 8)
    levels = {round(float(v), 6) for v in x[:, 3].flatten()}
    assert levels <= {round(level_value("jpeg", quality=q), 6) for q in range(30, 61)} and len(levels) > 1
    t.fit()
    moved = max(float((t.cleaner.state_dict()[k] - start[k]).abs().max()) for k in start)
    assert moved > 0  # only the upscaled output's loss reached it

    full = Trainer(_joint_config(tiny_data, tmp_path, path, "full", 0.5)).fit()
    first = Trainer(_joint_config(tiny_data, tmp_path, path, "paused", 0.5))
    first.fit(steps=3)
    Trainer(_joint_config(tiny_data, tmp_path, path, "paused", 0.5), resume=first.run_dir).fit()
    for f in ("final.safetensors", "final_cleaner.safetensors", "last/cleaner_ema.safetensors"):
        a, b = load_file(str(full / f)), load_file(str(first.run_dir / f))
        assert all(torch.equal(a[k], b[k]) for k in a), f
    assert _train_losses(full) == _train_losses(first.run_dir)
    restorer = load_weights_file(full / "final_cleaner.safetensors")
    assert restorer.spec.level_map and restorer.spec.channels == 3


def test_cleaner_lr_mult_needs_a_cleaner(tiny_data, tmp_path) -> None:
    with pytest.raises(ValueError, match="cleaned_by"):
        Trainer(tiny_config(tiny_data, tmp_path, "ksr", [2], "optim.cleaner_lr_mult=1.0"))

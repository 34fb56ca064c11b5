"""The realistic degradation pipeline: each operation's statistics, determinism, 8-bit ends."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kakudai.data.datasets import degrade_bicubic
from kakudai.data.pipeline import (DOWN_MODES, DegradeConfig, add_chroma_noise, add_noise, add_poisson,
                                   apply_spec, blur, blur_kernel, degrade_pair, jpeg, parse_spec, quantize,
                                   resize_to, sinc_kernel)


def _moments(k: np.ndarray) -> np.ndarray:
    """Covariance (2, 2) of a kernel taken as a distribution over its (y, x) grid."""
    r = np.arange(k.shape[0]) - (k.shape[0] - 1) / 2
    yy, xx = np.meshgrid(r, r, indexing="ij")
    return np.array([[np.sum(k * yy * yy), np.sum(k * yy * xx)], [np.sum(k * xx * yy), np.sum(k * xx * xx)]])


@pytest.mark.parametrize("kind", ["iso", "aniso", "generalized", "plateau"])
def test_kernels_are_normalised_and_centred(kind):
    k = blur_kernel(kind, (1.5, 0.7), theta=0.4, beta=1.5)
    assert k.shape[0] % 2 == 1 and k.shape[0] == k.shape[1]
    assert k.sum() == pytest.approx(1.0, abs=1e-12)
    assert (k >= 0).all()
    r = np.arange(k.shape[0]) - (k.shape[0] - 1) / 2
    assert np.sum(k * r[:, None]) == pytest.approx(0, abs=1e-9)  # centred: no shift
    assert np.sum(k * r[None, :]) == pytest.approx(0, abs=1e-9)


def test_gaussian_kernel_has_the_requested_covariance():
    s1, s2, theta = 2.0, 0.8, math.pi / 6
    k = blur_kernel("aniso", (s1, s2), theta=theta, size=31)
    c, s = math.cos(theta), math.sin(theta)
    rot = np.array([[c, -s], [s, c]])
    want = rot @ np.diag([s1 ** 2, s2 ** 2]) @ rot.T  # in (x, y) order
    got = _moments(k)[::-1, ::-1]  # kernel moments are (y, x)
    np.testing.assert_allclose(got, want, atol=0.02)
    iso = blur_kernel("iso", (1.3, 99.0), size=21)  # iso ignores the second sigma
    np.testing.assert_allclose(np.diag(_moments(iso)), [1.69, 1.69], atol=0.01)


def test_generalized_gaussian_with_beta_2_is_the_gaussian():
    np.testing.assert_allclose(blur_kernel("generalized", (1.2, 0.9), 0.3, beta=2.0),
                               blur_kernel("aniso", (1.2, 0.9), 0.3), atol=1e-12)


def test_plateau_is_flatter_than_gaussian_at_the_centre():
    g = blur_kernel("iso", (2.0, 2.0), size=15)
    p = blur_kernel("plateau", (2.0, 2.0), beta=4.0, size=15)
    c = 7
    # A plateau keeps its height over the core, then falls faster than a Gaussian.
    assert p[c, c + 1] / p[c, c] > g[c, c + 1] / g[c, c]
    assert p[c, c + 6] / p[c, c] < g[c, c + 6] / g[c, c] * 10


def test_sinc_kernel_is_a_low_pass_at_its_cutoff():
    k = sinc_kernel(math.pi / 2, 21)
    assert k.sum() == pytest.approx(1.0)
    resp = np.abs(np.fft.fft2(k, s=(128, 128)))
    f = np.fft.fftfreq(128) * 2 * math.pi  # radians per pixel
    assert resp[0, 0] == pytest.approx(1.0)
    low = resp[0, np.abs(f) < 0.35 * math.pi].min()
    high = resp[0, np.abs(f) > 0.7 * math.pi].max()
    assert low > 0.8 and high < 0.15


def test_blur_keeps_size_and_flat_images():
    x = torch.full((1, 3, 20, 24), 0.4)
    y = blur(x, blur_kernel("aniso", (2.0, 1.0), 0.5))
    assert y.shape == x.shape
    torch.testing.assert_close(y, x)


@pytest.mark.parametrize("mode", DOWN_MODES)
def test_resize_modes(mode):
    g = np.random.default_rng(0)
    x = torch.from_numpy(g.random((1, 3, 40, 30), dtype=np.float32))
    y = resize_to(x, (20, 15), mode)
    assert y.shape == (1, 3, 20, 15)
    assert abs(float(y.mean() - x.mean())) < 0.02
    if mode == "matlab":  # the benchmark shrink, exactly
        u8 = (x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        ref = degrade_bicubic(u8, 2)
        got = (quantize(resize_to(torch.from_numpy(u8).permute(2, 0, 1)[None].float() / 255, (20, 15),
                                  "matlab"))[0].permute(1, 2, 0).numpy() * 255).round()
        np.testing.assert_array_equal(got.astype(np.uint8), ref)


def test_gaussian_noise_statistics():
    x = torch.full((1, 3, 256, 256), 0.5)
    n = add_noise(x, 10.0, np.random.default_rng(1)) - x
    assert float(n.mean()) == pytest.approx(0.0, abs=0.002)
    assert float(n.std()) * 255 == pytest.approx(10.0, rel=0.02)
    ng = add_noise(x, 10.0, np.random.default_rng(1), gray=True) - x
    torch.testing.assert_close(ng[:, 0], ng[:, 2])  # one plane for all channels
    assert float(ng.std()) * 255 == pytest.approx(10.0, rel=0.03)


def test_poisson_noise_grows_with_intensity():
    g = np.random.default_rng(2)
    peak = 400.0
    for v in (0.1, 0.5, 0.9):
        x = torch.full((1, 1, 200, 200), v)
        n = add_poisson(x, peak, g) - x
        assert float(n.mean()) == pytest.approx(0.0, abs=0.003)
        assert float(n.std()) == pytest.approx(math.sqrt(v / peak), rel=0.05)


def test_chroma_noise_leaves_luma_alone():
    x = torch.full((1, 3, 64, 64), 0.5)
    y = add_chroma_noise(x, 10.0, np.random.default_rng(3))
    assert float((y - x).abs().max()) > 0.01
    luma = 0.299 * (y - x)[:, 0] + 0.587 * (y - x)[:, 1] + 0.114 * (y - x)[:, 2]
    assert float(luma.abs().max()) < 1e-4


def test_quantize_is_what_an_8bit_file_holds():
    x = torch.tensor([-0.2, 0.0, 0.3, 0.50196, 1.3])
    q = quantize(x)
    np.testing.assert_allclose((q * 255).numpy(), np.round((q * 255).numpy()), atol=1e-4)
    assert float(q.min()) == 0.0 and float(q.max()) == 1.0


def test_jpeg_is_libjpeg_420():
    import io

    from PIL import Image
    g = np.random.default_rng(4)
    u8 = (np.kron(g.random((4, 4, 3)), np.ones((16, 16, 1))) * 255).round().astype(np.uint8)
    x = torch.from_numpy(u8).permute(2, 0, 1)[None].float() / 255
    y = jpeg(x, 75)
    buf = io.BytesIO()
    Image.fromarray(u8).save(buf, format="JPEG", quality=75, subsampling="4:2:0")
    ref = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    np.testing.assert_array_equal((y[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), ref)
    assert float((jpeg(x, 20) - x).abs().mean()) > float((y - x).abs().mean())


def _cfg(**kw) -> DegradeConfig:
    base = dict(enabled=True, blur_prob=0.5, blur_kinds={"iso": 1, "aniso": 1, "generalized": 1, "plateau": 1,
                                                          "sinc": 1},
                down_modes={m: 1.0 for m in DOWN_MODES}, resize_prob=0.5, noise_prob=0.7, poisson_prob=0.3,
                chroma_noise_prob=0.3, jpeg_prob=0.7, second_stage_prob=0.5, second_blur_prob=0.5, shuffle=True)
    base.update(kw)
    return DegradeConfig(**base)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_degrade_pair_shapes_and_determinism(scale):
    hr = (np.random.default_rng(5).random((24 * scale, 16 * scale, 3)) * 255).astype(np.uint8)
    cfg = _cfg()
    outs = [degrade_pair(hr, scale, np.random.default_rng(s), cfg) for s in (7, 7, 8)]
    assert outs[0].shape == (24, 16, 3) and outs[0].dtype == np.uint8
    np.testing.assert_array_equal(outs[0], outs[1])
    assert not np.array_equal(outs[0], outs[2])


def test_clean_patches_are_the_benchmark_shrink():
    hr = (np.random.default_rng(6).random((48, 36, 3)) * 255).astype(np.uint8)
    lr = degrade_pair(hr, 3, np.random.default_rng(0), _cfg(clean_prob=1.0))
    np.testing.assert_array_equal(lr, degrade_bicubic(hr, 3))
    off = degrade_pair(hr, 3, np.random.default_rng(0), DegradeConfig())  # not enabled
    np.testing.assert_array_equal(off, degrade_bicubic(hr, 3))


def test_degradations_move_the_lr_away_from_the_benchmark():
    hr = (np.random.default_rng(9).random((96, 96, 3)) * 255).astype(np.uint8)
    ref = degrade_bicubic(hr, 2).astype(np.float64)
    noisy = degrade_pair(hr, 2, np.random.default_rng(0),
                         DegradeConfig(enabled=True, noise_prob=1.0, noise_sigma=[20.0, 20.0], noise_gray_prob=0.0))
    # 20/255 colour noise, clipped and rounded.
    assert np.std(noisy.astype(np.float64) - ref) == pytest.approx(20.0, rel=0.15)


def test_parse_spec_and_errors():
    assert parse_spec("blur:0.8, noise:5,jpeg:80") == [("blur", 0.8), ("noise", 5.0), ("jpeg", 80.0)]
    for bad in ("", "jpeg", "jpeg:101", "jpeg:7.5", "noise:-1", "sharpen:2", "noise:x"):
        with pytest.raises(ValueError):
            parse_spec(bad)


def test_apply_spec_noise_level_and_8bit():
    lr = np.full((128, 128, 3), 128, np.uint8)
    out = apply_spec(lr, parse_spec("noise:10"), np.random.default_rng(0))
    assert out.dtype == np.uint8 and out.shape == lr.shape
    assert np.std(out.astype(np.float64)) == pytest.approx(10.0, rel=0.05)
    gray = apply_spec(lr[:, :, 0], parse_spec("blur:1,jpeg:50"), np.random.default_rng(0))
    assert gray.shape == (128, 128)


def test_training_batches_with_degradations(tmp_path):
    from PIL import Image

    from kakudai.train.config import load_config
    from kakudai.train.trainer import Trainer

    d = tmp_path / "imgs"
    d.mkdir()
    g = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray((g.random((60, 60, 3)) * 255).astype(np.uint8)).save(d / f"{i}.png")
    cfg = load_config(None, [f"data.train_dirs=['{d}']", "data.val_dirs=[]", "data.scales=[2]",
                             "data.patch_size=12", "data.batch_size=4", "data.degrade.enabled=true",
                             "data.degrade.jpeg_prob=1.0", "data.degrade.noise_prob=1.0",
                             "model.args={'width': 8, 'blocks': 1}", "iterations=2", "val_every=0",
                             f"out_dir='{tmp_path / 'runs'}'", "progress=false"])
    t = Trainer(cfg)
    lr, hr, _ = t._batch(2)
    assert lr.shape == (4, 1, 12, 12) and hr.shape == (4, 1, 24, 24)
    # The LR is no longer the clean shrink of the HR target.
    clean = torch.from_numpy(degrade_bicubic((hr[0, 0].numpy() * 255).round().astype(np.uint8), 2)).float() / 255
    assert float((lr[0, 0] - clean).abs().mean()) > 0.005
    run = t.fit()
    assert (run / "final.safetensors").exists()


def test_train_config_errors_are_one_line(tmp_path, capsys):
    from kakudai.cli import main

    assert main(["train", "--set", f"data.train_dirs=['{tmp_path / 'nosuch'}']",
                 f"--set=out_dir='{tmp_path / 'runs'}'"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "training folder not found" in err[0] and "nosuch" in err[0]
    assert main(["train", "--set", "data.nosuch=1"]) == 1
    assert "unknown config key DataConfig.nosuch" in capsys.readouterr().err

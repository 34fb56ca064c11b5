"""Restoration (denoising and JPEG artifact removal): degradations, the RED-Net restoration options, the
restore pipeline, the denoise/JPEG evaluation protocol, the CLI and training."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import kakudai
import kakudai.checkpoint as ckpt
import kakudai.zoo as zoo
from kakudai.cli import main
from kakudai.data.degrade import (add_gaussian_noise, degrade_batch, double_jpeg, jpeg_level,
                                  jpeg_roundtrip, noise_level, restore_kind, to_gray)
from kakudai.evaluation import evaluate_denoise, evaluate_jpeg
from kakudai.models.calling import gray_companion
from kakudai.infer.restore import (BLIND_QUALITY, NOISE_LEVEL_QUALITY, Denoiser, denoise_settings,
                                   load_restorer, restore, restore_array)
from kakudai.train.config import DataConfig, load_config


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Smooth random colour texture, uint8 (h, w, 3)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3))
    for _ in range(5):
        f = rng.uniform(0.03, 0.3, size=2)
        img += rng.uniform(0.2, 1.0, size=3) * np.sin(f[0] * yy + f[1] * xx + rng.uniform(0, 6.3))[..., None]
    img = (img - img.min()) / (img.max() - img.min())
    return np.round(img * 255).astype(np.uint8)


def _tiny_rednet(**kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return kakudai.create_model("rednet", **{"depth": 4, "width": 8, **kw}).eval()


def _tiny_unet(**kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return kakudai.create_model("unet", **{"widths": (4, 8, 8), "blocks": 1, **kw}).eval()


# ------------------------------------------------------------------ degradations
def test_noise_is_seeded_has_the_right_std_and_is_not_clipped() -> None:
    img = np.zeros((3, 128, 128), np.float32)  # black: half the noise falls below 0
    a = add_gaussian_noise(img, 25, np.random.default_rng(1))
    b = add_gaussian_noise(img, 25, np.random.default_rng(1))
    c = add_gaussian_noise(img, 25, np.random.default_rng(2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert abs(a.std() * 255 - 25) < 0.5  # 49k samples: std error ~0.3%
    assert abs(a.mean() * 255) < 0.5
    assert a.min() < -0.2  # not clipped
    assert add_gaussian_noise(img, 25, np.random.default_rng(1), clip=True).min() == 0.0
    g = add_gaussian_noise(img, 50, np.random.default_rng(3), gray=True)
    assert np.array_equal(g[0], g[1]) and np.array_equal(g[1], g[2])
    assert abs(g.std() * 255 - 50) < 1.5


def test_jpeg_roundtrip_quality_order_and_gray() -> None:
    img = _texture(np.random.default_rng(0), 64, 64)
    errs = [np.abs(jpeg_roundtrip(img, q).astype(int) - img).mean() for q in (10, 40, 90)]
    assert errs[0] > errs[1] > errs[2] > 0
    gray = img[:, :, 0]
    out = jpeg_roundtrip(gray, 30)
    assert out.shape == gray.shape and out.dtype == np.uint8
    # Same bytes as encoding through Pillow directly (the protocol is "Pillow/libjpeg").
    buf = io.BytesIO()
    Image.fromarray(gray).save(buf, format="JPEG", quality=30)
    assert np.array_equal(out, np.asarray(Image.open(io.BytesIO(buf.getvalue()))))
    with pytest.raises(ValueError):
        jpeg_roundtrip(gray, 0)
    with pytest.raises(TypeError):
        jpeg_roundtrip(gray.astype(np.float32), 50)


def _block_phase(img: np.ndarray) -> int:
    """Column phase (x mod 8) of the strongest horizontal discontinuities: JPEG's block edges."""
    d = np.abs(np.diff(img.astype(np.float64), axis=1)).mean(axis=0)  # d[k]: between x=k and k+1
    x = np.arange(1, img.shape[1])
    return int(np.argmax([d[(x % 8) == p].mean() for p in range(8)]))


def test_double_jpeg_shifts_the_block_grid() -> None:
    yy, xx = np.mgrid[0:96, 0:96]
    img = np.clip(40 + 1.6 * xx + 0.7 * yy, 0, 255).astype(np.uint8)  # a ramp: blocks show as steps
    assert _block_phase(jpeg_roundtrip(img, 10)) == 0
    # Mild first pass, strong second pass on a grid moved 3 columns right:
    # its block edges fall where x + 3 is a multiple of 8.
    shifted = double_jpeg(img, 95, 10, shift=(0, 3))
    assert shifted.shape == img.shape and shifted.dtype == np.uint8
    assert _block_phase(shifted) == 5
    aligned = double_jpeg(img, 95, 10, shift=(0, 0))
    assert _block_phase(aligned) == 0 and not np.array_equal(aligned, shifted)
    colour = double_jpeg(_texture(np.random.default_rng(1), 40, 44), 50, 30, shift=(5, 2),
                         subsampling="4:4:4")
    assert colour.shape == (40, 44, 3)


def _cfg(**kw) -> DataConfig:
    return DataConfig(task="restore", **kw)


def test_degrade_batch_is_deterministic_and_shaped() -> None:
    hr = torch.from_numpy(_texture(np.random.default_rng(0), 32, 32 * 6)).float().div(255)
    hr = torch.stack(list(hr.permute(2, 0, 1).split(32, dim=2)))  # (6, 3, 32, 32)
    cfg = _cfg(noise_sigma=[0.0, 55.0], noise_gray_prob=0.5, jpeg_quality=[10, 95], jpeg_prob=0.5,
               jpeg_double_prob=0.5)
    x1, y1 = degrade_batch(hr, np.random.default_rng(7), cfg, 3)
    x2, y2 = degrade_batch(hr, np.random.default_rng(7), cfg, 3)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert x1.shape == y1.shape == (6, 3, 32, 32)
    x, y = degrade_batch(hr, np.random.default_rng(7), _cfg(jpeg_quality=[10, 95], jpeg_prob=1.0), 1,
                         level_map=True)
    assert x.shape == (6, 2, 32, 32) and y.shape == (6, 1, 32, 32)
    plane = x[:, 1]
    assert torch.all(plane == plane[:, :1, :1])  # constant per patch
    assert plane.min() >= jpeg_level(95) - 1e-6 and plane.max() <= jpeg_level(10) + 1e-6
    with pytest.raises(ValueError):
        degrade_batch(hr, np.random.default_rng(0), cfg, 3, level_map=True)  # two kinds + a map
    with pytest.raises(ValueError):
        restore_kind(_cfg())


def test_degrade_batch_noise_statistics_and_gray_patches() -> None:
    hr = torch.full((32, 3, 32, 32), 0.5)
    cfg = _cfg(noise_sigma=[25.0, 25.0], noise_gray_prob=0.5)
    x, y = degrade_batch(hr, np.random.default_rng(0), cfg, 3, level_map=True)
    stds = ((x[:, :3] - y) * 255).flatten(1).std(dim=1)
    # The map always says 25; the real sigma is 25 or, in "slack" patches, weaker.
    assert torch.allclose(x[:, 3], torch.full_like(x[:, 3], noise_level(25)))
    assert (stds < 25 * 1.12).all()
    at_map = int(((stds - 25).abs() < 25 * 0.12).sum())
    assert 32 * 0.5 < at_map < 32
    gray = [i for i in range(32) if torch.equal(x[i, 0], x[i, 1])]
    assert 0 < len(gray) < 32  # some patches are gray (R = G = B noise), some colour
    x1, y1 = degrade_batch(hr, np.random.default_rng(0), cfg, 1)
    assert x1.shape == (32, 1, 32, 32)
    assert abs(((x1 - y1) * 255).std().item() - 25) < 1.0  # no map: exactly sigma 25
    assert np.allclose(to_gray(np.full((3, 2, 2), 0.5, np.float32)), 0.5, atol=1e-6)


def test_jpeg_quality_power_skews_the_level_map_towards_low_quality() -> None:
    hr = torch.full((400, 1, 8, 8), 0.5)

    def qualities(power: float) -> np.ndarray:
        cfg = _cfg(jpeg_quality=[10, 95], jpeg_prob=1.0, jpeg_quality_power=power)
        x, _ = degrade_batch(hr, np.random.default_rng(3), cfg, 1, level_map=True)
        return np.rint(100 - x[:, 1, 0, 0].numpy() * 100)  # jpeg_level = (100 - q) / 100

    flat, skewed = qualities(1.0), qualities(2.0)
    assert flat.min() >= 10 and flat.max() <= 95 and skewed.min() >= 10 and skewed.max() <= 95
    # P(q <= 40): 31/86 = 0.36 uniform, sqrt(31/86) = 0.60 with power 2.
    assert abs((flat <= 40).mean() - 0.36) < 0.07
    assert abs((skewed <= 40).mean() - 0.60) < 0.07


# ------------------------------------------------------------------ model + pipeline
@pytest.mark.parametrize("kw", [{}, {"level_map": True}, {"unshuffle": 2, "level_map": True},
                                {"unshuffle": 3, "channels": 1}])
def test_rednet_restoration_shapes(kw: dict) -> None:
    m = _tiny_rednet(**kw)
    c = int(m.channels)
    x = torch.rand(2, m.spec.in_channels, 13, 10)  # odd sizes: unshuffle pads inside
    with torch.no_grad():
        y = m(x)
    assert y.shape == (2, c, 13, 10)
    # The global residual: a zeroed last layer returns the image channels as they are.
    with torch.no_grad():
        m.decoder[-1].weight.zero_()
        m.decoder[-1].bias.zero_()
        assert torch.equal(m(x), x[:, :c])
    assert m.spec.receptive_radius == 4 * m.unshuffle + m.unshuffle - 1


@pytest.mark.parametrize("kw", [{}, {"level_map": True, "channels": 1},
                                pytest.param({"widths": (4, 8, 8, 16), "blocks": 2}, marks=pytest.mark.slow)])
def test_unet_restoration_shapes_and_reach(kw: dict) -> None:
    m = _tiny_unet(**kw)
    c = int(m.channels)
    x = torch.rand(2, m.spec.in_channels, 13, 10)  # not multiples of pad_multiple: padded inside
    with torch.no_grad():
        y = m(x)
        assert y.shape == (2, c, 13, 10)
        # The declared reach bounds the real one: a pixel far from the change is unchanged.
        big = torch.rand(1, m.spec.in_channels, 2 * m.spec.receptive_radius + 8, 8 * m.spec.pad_multiple)
        poked = big.clone()
        poked[:, :, 0] += 1.0
        diff = (m(poked) - m(big)).abs().amax(dim=(0, 1, 3))
        assert diff[m.spec.receptive_radius + 1:].max() == 0 and diff[0] > 0
        m.tail.weight.zero_()
        m.tail.bias.zero_()
        assert torch.equal(m(x), x[:, :c])  # the global residual
    with pytest.raises(ValueError):
        kakudai.create_model("unet", widths=(8,))


@pytest.mark.parametrize("kw", [{"level_map": True}, {"unshuffle": 2, "level_map": True}, {"unet": True}])
@pytest.mark.slow
def test_restore_tiled_equals_whole(kw: dict) -> None:
    m = _tiny_unet(level_map=True) if kw.pop("unet", False) else _tiny_rednet(**kw)
    for c in (1, 3):
        x = torch.rand(1, c, 37, 29) * 1.2 - 0.1  # noisy images leave [0, 1]
        whole = restore(m, x, 0.1)
        assert whole.shape == x.shape and whole.min() >= 0 and whole.max() <= 1
        for tile in (8, 13, 30):
            assert torch.allclose(restore(m, x, 0.1, tile=tile), whole, atol=1e-5)
    u8 = _texture(np.random.default_rng(0), 21, 34)
    out = restore_array(u8, m, 0.1, tile=10)
    assert out.dtype == np.uint8 and out.shape == u8.shape
    assert np.array_equal(out, restore_array(u8, m, 0.1))
    assert restore_array(u8[:, :, 0], m, 0.1).shape == (21, 34)
    assert restore_array(u8.astype(np.uint16) * 257, m, 0.1).dtype == np.uint16


def test_restore_gray_model_cleans_each_colour_channel() -> None:
    m = _tiny_rednet(channels=1, level_map=True)
    x = torch.rand(1, 3, 16, 16)
    per_channel = torch.cat([restore(m, x[:, i:i + 1], 0.2) for i in range(3)], dim=1)
    assert torch.allclose(restore(m, x, 0.2), per_channel, atol=1e-6)


@pytest.mark.parametrize("build", [_tiny_rednet, _tiny_unet])
def test_to_gray_computes_what_the_rgb_model_does_on_gray(build) -> None:
    m = build(level_map=True)
    with torch.no_grad():  # a non-trivial tail, so that averaging its outputs is tested
        last = m.tail if hasattr(m, "tail") else m.decoder[-1]
        last.weight.normal_(0, 0.1)
        last.bias.normal_(0, 0.1)
    g = m.to_gray()
    assert g.spec.channels == 1 and g.spec.level_map and g.arch_args["channels"] == 1
    x = torch.rand(2, 1, 15, 12)
    assert torch.allclose(restore(g, x, 0.1), restore(m, x, 0.1), atol=1e-6)
    with pytest.raises(ValueError):
        g.to_gray()


@pytest.mark.parametrize("arch", ["unet", "ksr"])
@pytest.mark.slow
def test_deepened_is_the_same_function_and_then_trains(arch: str) -> None:
    from kakudai.models.blocks import deepened
    m = (_tiny_unet(level_map=True) if arch == "unet"
         else kakudai.create_model("ksr", scale=2, width=8, blocks=1).eval())
    with torch.no_grad():  # non-trivial outputs, so that "the same function" means something
        (m.tail if arch == "unet" else m.tails["x2"]).weight.normal_(0, 0.1)
    deep = deepened(m, 3)
    assert deep.arch_args["blocks"] == 3 and deep.spec.receptive_radius > m.spec.receptive_radius
    x = torch.rand(2, m.spec.in_channels, 16, 12)
    with torch.no_grad():
        assert torch.allclose(deep(x), m(x), atol=1e-6)
    # The new blocks are identities that still learn: their second conv gets a gradient.
    deep(x).square().mean().backward()
    new = deep.middle[2] if arch == "unet" else deep.body[2]
    assert new.conv2.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError):
        deepened(deep, 2)
    # Deterministic: growing the same model twice gives the same tensors, whatever the
    # global random state (a config chain's deepen step reproduces its file).
    torch.manual_seed(123)
    again = deepened(m, 3).state_dict()
    assert all(torch.equal(v, again[k]) for k, v in deepened(m, 3).state_dict().items())


def test_noise_level_mapping() -> None:
    levels = [denoise_settings(noise_level=n) for n in range(4)]
    assert all(kind == "jpeg" for kind, _, _ in levels)
    values = [v for _, v, _ in levels]
    assert values == sorted(values) and len(set(values)) == 4  # 0 = lightest ... 3 = strongest
    assert values == [jpeg_level(NOISE_LEVEL_QUALITY[n]) for n in range(4)]
    assert NOISE_LEVEL_QUALITY[0] >= 85 and NOISE_LEVEL_QUALITY[3] <= 25  # waifu2x's 0 = q85-95
    assert denoise_settings(sigma=25)[:2] == ("noise", pytest.approx(25 / 255))
    assert denoise_settings(jpeg=True)[1] == pytest.approx(jpeg_level(BLIND_QUALITY))
    assert denoise_settings(jpeg=40)[1] == pytest.approx(0.6)
    for bad in ({}, {"noise_level": 4}, {"sigma": 80}, {"jpeg": 5}, {"sigma": 5, "noise_level": 1}):
        with pytest.raises(ValueError):
            denoise_settings(**bad)


# ------------------------------------------------------------------ evaluation protocol
@pytest.fixture
def tiny_bench(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    d = tmp_path / "bench"
    d.mkdir()
    Image.fromarray(_texture(rng, 64, 48)).save(d / "a_rgb.png")
    Image.fromarray(_texture(rng, 40, 56)[:, :, 1]).save(d / "b_gray.png")
    return d


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * math.log10(255.0 ** 2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


def test_eval_denoise_none_matches_hand_computation(tiny_bench: Path) -> None:
    r = evaluate_denoise(None, tiny_bench, 25, seed=0)
    hand = []
    for i, name in enumerate(["a_rgb.png", "b_gray.png"]):
        clean = np.asarray(Image.open(tiny_bench / name)).astype(np.float64)
        noise = np.random.default_rng((0, i)).standard_normal(clean.shape) * 25.0
        hand.append(_psnr(clean + noise, clean))  # float noisy: no clipping, no rounding
    assert [row["name"] for row in r["images"]] == ["a_rgb.png", "b_gray.png"]
    assert r["images"][0]["psnr"] == pytest.approx(hand[0], abs=1e-9)
    assert r["psnr"] == pytest.approx(np.mean(hand), abs=1e-9)
    assert abs(r["psnr"] - 20 * math.log10(255 / 25)) < 0.2  # the published 20.17 dB
    assert evaluate_denoise(None, tiny_bench, 25, seed=1)["psnr"] != r["psnr"]


def test_eval_jpeg_none_matches_hand_computation(tiny_bench: Path) -> None:
    r = evaluate_jpeg(None, tiny_bench, 20)
    rgb = np.asarray(Image.open(tiny_bench / "a_rgb.png"))
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=20)
    dec = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")).astype(np.float64)

    def y(a: np.ndarray) -> np.ndarray:  # MATLAB rgb2ycbcr on uint8: Y rounded to 8 bits
        return np.round(a.astype(np.float64) @ np.array([65.481, 128.553, 24.966]) / 255 + 16)

    assert r["images"][0]["psnr"] == pytest.approx(_psnr(y(dec), y(rgb)), abs=1e-9)
    gray = np.asarray(Image.open(tiny_bench / "b_gray.png"))
    assert r["images"][1]["psnr"] == pytest.approx(_psnr(jpeg_roundtrip(gray, 20), gray), abs=1e-9)


def test_eval_with_a_model_and_assumed_level(tiny_bench: Path) -> None:
    m = _tiny_rednet(level_map=True)
    r = evaluate_denoise(m, tiny_bench, 15, with_ssim=False)
    r2 = evaluate_denoise(m, tiny_bench, 15, assume_sigma=40, with_ssim=False)
    assert r["n"] == 2 and math.isfinite(r["psnr"]) and r["psnr"] != r2["psnr"]
    assert math.isfinite(evaluate_jpeg(m, tiny_bench, 30, with_ssim=False)["psnr"])


# ------------------------------------------------------------------ CLI
@pytest.fixture
def no_weights(tmp_path: Path, monkeypatch) -> Path:
    empty = tmp_path / "weights"
    empty.mkdir()
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", empty)
    return empty


@pytest.fixture
def one_jpeg(tmp_path: Path) -> Path:
    p = tmp_path / "in" / "photo.jpg"
    p.parent.mkdir()
    Image.fromarray(_texture(np.random.default_rng(0), 40, 36)).save(p, quality=30)
    return p


@pytest.mark.parametrize("argv,missing", [
    (["denoise", "{img}", "-o", "{out}", "--noise-level", "1"], zoo.DEFAULT_RESTORERS["jpeg"]),
    (["denoise", "{img}", "-o", "{out}", "--sigma", "25"], zoo.DEFAULT_RESTORERS["noise"]),
    (["denoise", "{img}", "-o", "{out}", "--jpeg"], zoo.DEFAULT_RESTORERS["jpeg"]),
    (["upscale", "{img}", "-o", "{out}", "--denoise", "2", "--model", "bicubic"], zoo.AUTO_RESTORERS["jpeg"]),
    (["eval", "--task", "denoise", "--sigma", "25", "{dir}"], zoo.DEFAULT_RESTORERS["noise"]),
    (["eval", "--task", "jpeg", "--quality", "10", "{dir}"], zoo.DEFAULT_RESTORERS["jpeg"]),
])
def test_cli_missing_weights_is_one_clean_line(argv, missing, no_weights, one_jpeg, tmp_path,
                                               capsys) -> None:
    out = tmp_path / "out"
    args = [a.format(img=one_jpeg, out=out, dir=one_jpeg.parent) for a in argv]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("kakudai: error: ") and f"{missing}.safetensors" in err[0]
    assert "Traceback" not in err[0]
    assert not out.exists() or not any(out.iterdir())


def test_cli_denoise_writes_png_for_jpeg_and_keeps_modes(one_jpeg, tmp_path, capsys) -> None:
    w = tmp_path / "tiny.safetensors"
    ckpt.save_model(_tiny_rednet(level_map=True, unshuffle=2), w)
    gray = one_jpeg.parent / "gray.png"
    Image.fromarray(_texture(np.random.default_rng(1), 30, 26)[:, :, 0]).save(gray)
    out = tmp_path / "out"
    assert main(["denoise", str(one_jpeg.parent), "-o", str(out), "--jpeg", "--model", str(w),
                 "--tile", "16"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["gray.png", "photo.png"]  # JPEG -> PNG
    assert Image.open(out / "gray.png").mode == "L"
    assert Image.open(out / "photo.png").size == (36, 40)
    assert main(["denoise", str(one_jpeg), "-o", str(out), "--sigma", "10", "--model", str(w),
                 "--format", "jpg"]) == 0
    assert (out / "photo.jpg").exists()
    assert main(["denoise", str(one_jpeg), "-o", str(out), "--sigma", "99", "--model", str(w)]) == 1
    assert "sigma must be in 0-55" in capsys.readouterr().err


def test_upscale_with_denoise_goes_through_the_api(no_weights: Path) -> None:
    """Upscaling with a cleanup level cleans with the route's JPEG restorer
    (AUTO_RESTORERS), then upscales: the same as doing both by hand."""
    m = _tiny_rednet(level_map=True)
    route = zoo.AUTO_RESTORERS["jpeg"]
    for name in {route, zoo.DEFAULT_RESTORERS["jpeg"]}:
        ckpt.save_model(m, no_weights / f"{name}.safetensors")
    assert zoo.ZOO[route].path().exists()
    img = _texture(np.random.default_rng(2), 20, 24)
    plain = kakudai.upscale(img, 2, model="bicubic")
    cleaned = kakudai.upscale(img, 2, model="bicubic", denoise=1)
    assert cleaned.shape == plain.shape == (40, 48, 3) and not np.array_equal(cleaned, plain)
    by_hand = kakudai.upscale(kakudai.denoise(img, noise_level=1, model=zoo.ZOO[route].path()), 2,
                              model="bicubic")
    assert np.array_equal(cleaned, by_hand)
    pil = kakudai.denoise(Image.fromarray(img).convert("RGBA"), noise_level=0)
    assert pil.mode == "RGBA" and pil.size == (24, 20)
    assert Denoiser(jpeg=True).level == pytest.approx(jpeg_level(BLIND_QUALITY))


def test_shipped_noise_model_sends_gray_images_to_its_gray_companion(no_weights: Path) -> None:
    rgb, gray = _tiny_rednet(level_map=True), _tiny_rednet(channels=1, level_map=True)
    ckpt.save_model(rgb, zoo.ZOO["unet-noise"].path())
    def close(a: torch.Tensor, b: torch.Tensor) -> bool:  # loading may re-lay the weights out
        return torch.allclose(a, b, atol=1e-6)

    x1, x3 = torch.rand(1, 1, 12, 14), torch.rand(1, 3, 12, 14)
    alone = load_restorer("noise")
    assert gray_companion(alone) is None  # not shipped: the RGB model does gray too
    assert close(restore(alone, x1, 0.1), restore(rgb, x1, 0.1))
    ckpt.save_model(gray, zoo.ZOO["unet-noise-gray"].path())
    assert zoo.ZOO["unet-noise"].gray == "unet-noise-gray"
    pair = load_restorer("noise")
    assert close(restore(pair, x1, 0.1), restore(gray, x1, 0.1))
    assert close(restore(pair, x3, 0.1), restore(rgb, x3, 0.1))
    assert not close(restore(pair, x1, 0.1), restore(rgb, x1, 0.1))
    u8 = _texture(np.random.default_rng(3), 12, 14)[:, :, 0]
    by_gray = restore_array(u8, gray, noise_level(10)).astype(int)
    assert np.abs(kakudai.denoise(u8, sigma=10).astype(int) - by_gray).max() <= 1
    # Another shipped restorer by name, or an explicit path, is that model alone.
    ckpt.save_model(gray, zoo.ZOO["rednet-noise"].path())
    assert close(restore(load_restorer("noise", "rednet-noise"), x1, 0.1), restore(gray, x1, 0.1))
    assert gray_companion(load_restorer("noise", str(zoo.ZOO["unet-noise"].path()))) is None


# ------------------------------------------------------------------ training
@pytest.mark.slow
def test_restore_training_reduces_the_loss(tmp_path: Path) -> None:
    from kakudai.train.trainer import Trainer

    rng = np.random.default_rng(0)
    train = tmp_path / "train"
    train.mkdir()
    for i in range(3):
        Image.fromarray(_texture(rng, 64, 64)).save(train / f"t{i}.png")
    cfg = load_config(None, [
        "model.name='rednet'", "model.args={'depth': 4, 'width': 16, 'level_map': True}",
        f"data.train_dirs={[str(train)]!r}", f"data.val_dirs={[str(train)]!r}", "data.task='restore'",
        "data.noise_sigma=[20.0, 40.0]", "data.patch_size=24", "data.batch_size=8",
        "optim.lr=2e-3", "optim.schedule='constant'", "optim.loss='l2'", "iterations=100",
        "val_every=0", "ckpt_every=0", "log_every=1000", "progress=False", "threads=1",
        f"out_dir={str(tmp_path / 'runs')!r}", "name='restore'"])
    trainer = Trainer(cfg)
    probe = np.random.default_rng(99)
    _, hr_u8 = trainer.data.sample(probe, 16, 24, 1, False)
    hr = torch.from_numpy(hr_u8).permute(0, 3, 1, 2).float().div(255)
    x, y = degrade_batch(hr, probe, cfg.data, 3, level_map=True)

    def loss() -> float:
        with torch.no_grad():
            return float(torch.mean((trainer.model(x) - y) ** 2))

    before = loss()
    run = trainer.fit()
    after = loss()
    identity = float(torch.mean((x[:, :3] - y) ** 2))  # doing nothing: the noise itself
    assert after < 0.5 * before and after < 0.6 * identity, (before, identity, after)
    assert (run / "final.safetensors").exists()
    # The run's weights rebuild a level-map restoration model.
    loaded = kakudai.load_model(run / "final.safetensors")
    assert loaded.spec.level_map and loaded.spec.in_channels == 4


# ------------------------------------------------------------------ shipped models (when present)
@pytest.mark.parametrize("kind", sorted(zoo.DEFAULT_RESTORERS))
@pytest.mark.slow
def test_shipped_restorer_blind_across_levels(kind: str) -> None:
    if not zoo.ZOO[zoo.DEFAULT_RESTORERS[kind]].path().exists():
        pytest.skip(f"{zoo.ZOO[zoo.DEFAULT_RESTORERS[kind]].path().name} not shipped yet")
    img = _texture(np.random.default_rng(5), 96, 96).astype(np.float32) / 255
    model = Denoiser(**({"sigma": 0} if kind == "noise" else {"jpeg": 95})).model
    if kind == "noise":
        for sigma in (10, 25, 50):
            noisy = add_gaussian_noise(img.transpose(2, 0, 1), sigma, np.random.default_rng(0))
            out = restore_array(noisy.transpose(1, 2, 0), model, noise_level(sigma))
            assert _psnr(out * 255, img * 255) > _psnr(noisy.transpose(1, 2, 0) * 255, img * 255) + 3
        blind = noise_level(55)
    else:
        u8 = np.round(img * 255).astype(np.uint8)
        for q in (10, 30, 60):
            coded = jpeg_roundtrip(u8, q)
            out = restore_array(coded, model, jpeg_level(q))
            assert _psnr(out, u8) > _psnr(coded, u8)
        blind = jpeg_level(BLIND_QUALITY)
    # Clean input at the blind (strongest) level must not be smeared.
    clean = restore_array(img, model, blind)
    assert _psnr(clean * 255, img * 255) > 35

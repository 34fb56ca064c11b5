"""Photo or illustration: the flatness statistic, the automatic choice, and the routing of
drawings to an alias's illustration model (kakudai.ops.estimate, kakudai.infer.auto,
kakudai.zoo, kakudai.api.Upscaler)."""

from __future__ import annotations

import numpy as np
import torch
import pytest

import kakudai
from kakudai import zoo
from kakudai.api import Upscaler
from kakudai.checkpoint import save_model
from kakudai.data.datasets import degrade_bicubic
from kakudai.data.io import read_image_uint8
from kakudai.infer.auto import DRAWN_MIN_FLAT, style_of
from kakudai.ops.estimate import flat_fraction


def test_flat_fraction_counts_flat_neighbourhoods() -> None:
    img = np.zeros((40, 40, 3), np.uint8)
    assert flat_fraction(img) == 1.0
    img[:, 20:] = np.random.default_rng(0).integers(0, 256, (40, 20, 3))
    # 3x3 windows: 38 columns of positions, those starting at 0..17 lie in the flat half.
    assert flat_fraction(img) == pytest.approx(18 / 38)
    ramp = np.tile(np.arange(40, dtype=np.uint8), (40, 1))  # one level per pixel: range 2 per window
    assert flat_fraction(ramp) == 0.0 and flat_fraction(ramp, tolerance=2) == 1.0
    assert flat_fraction(ramp.astype(np.uint16) * 257) == 0.0  # 16-bit in 8-bit units
    one_channel = img.copy()
    one_channel[:, :20, 2] = np.arange(20) * 10  # only blue varies: not flat
    assert flat_fraction(one_channel) == 0.0
    assert flat_fraction(np.zeros((2, 9), np.uint8)) == 0.0
    assert flat_fraction(img.astype(np.float32) / 255) == flat_fraction(img)


@pytest.mark.slow
def test_style_of_benchmark_sets(bench_dir) -> None:
    """Drawings read as illustrations and photos as photos, on LR images as users have
    them (MATLAB bicubic x2 and x4; Set14 holds a slide screenshot, the flattest photo)."""
    styles: dict[tuple[str, int], list[str]] = {}
    for folder in ("Art10", "Set5", "Set14", "Kodak24"):
        for p in sorted((bench_dir / folder).iterdir()):
            hr = read_image_uint8(p, mode="RGB")
            for s in (2, 4):
                lr = degrade_bicubic(hr[: hr.shape[0] // s * s, : hr.shape[1] // s * s], s)
                styles.setdefault((folder, s), []).append(style_of(lr))
    assert styles[("Art10", 2)] == styles[("Art10", 4)] == ["illustration"] * 10
    for (folder, s), got in styles.items():
        if folder != "Art10":
            assert set(got) == {"photo"}, (folder, s)


@pytest.mark.slow
def test_style_of_compressed_images(bench_dir) -> None:
    """After JPEG 75 and the automatic cleaning (when the JPEG is read), x2 drawings still
    read as drawings (cleaned pixels: the lower threshold) and photos as photos."""
    from kakudai.api import _array_to_data
    from kakudai.evaluation import degraded_lr
    up = Upscaler("default", tile=None, denoise="auto")
    for folder, want in (("Art10", "illustration"), ("Set5", "photo"), ("Set14", "photo")):
        for p in sorted((bench_dir / folder).iterdir()):
            hr = read_image_uint8(p, mode="RGB")
            lr = degrade_bicubic(hr[: hr.shape[0] // 2 * 2, : hr.shape[1] // 2 * 2], 2)
            cleaned = up.clean(_array_to_data(degraded_lr(p.name, lr, 2, "jpeg:75"))[0])
            assert style_of(cleaned.pixels, cleaned=up.last_cleanup is not None) == want, p.name


def test_style_of_small_and_large_images() -> None:
    assert style_of(np.zeros((20, 20, 3), np.uint8)) == "photo"  # too small to read
    rng = np.random.default_rng(1)
    big = np.full((1500, 2000, 3), 255, np.uint8)  # a drawing: white page ...
    big[700:800] = rng.integers(0, 256, (100, 2000, 3))  # ... with one textured band
    assert flat_fraction(big) > DRAWN_MIN_FLAT and style_of(big) == "illustration"
    half = np.full((600, 900, 3), 255, np.uint8)
    half[:, :494] = rng.integers(0, 256, (600, 494, 3))  # flat share 0.45: a drawing only once cleaned
    assert flat_fraction(half) == pytest.approx(404 / 898)
    assert style_of(half) == "photo" and style_of(half, cleaned=True) == "illustration"
    assert style_of(rng.integers(0, 256, (1500, 2000, 3)).astype(np.uint8)) == "photo"


@pytest.fixture
def art_zoo(weights_dir, monkeypatch):
    """A package whose default alias has a 1-channel photo model and a 3-channel
    illustration model at x2 (tiny untrained networks)."""
    monkeypatch.setitem(zoo.ZOO, "art", zoo.Shipped("art", "ksr", scales=(2,)))
    for name, channels in (("ksr", 1), ("art", 3)):
        save_model(kakudai.create_model("ksr", scale=2, channels=channels, width=4, blocks=1),
                   weights_dir / f"{name}_x2.safetensors")
    return weights_dir


def test_drawings_go_to_the_illustration_model(art_zoo) -> None:
    assert zoo.for_style("default", "illustration", 2) == "art"
    assert zoo.for_style("default", "illustration", 3) == "default"  # art has no x3: the photo way
    assert zoo.for_style("default", "photo", 2) == "default"
    assert zoo.for_style("ksr", "illustration", 2) == "ksr"  # only aliases are rerouted
    drawing = np.full((64, 64, 3), 200, np.uint8)
    drawing[20:40, 10:50] = (30, 60, 220)
    photo = np.random.default_rng(2).integers(0, 256, (64, 64, 3)).astype(np.uint8)
    up = Upscaler("default", tile=None, style="auto")
    assert up.on_array(drawing, 2).shape == (128, 128, 3) and up.last_style == "illustration"
    assert up.model_for(2.0, "illustration").channels == 3
    up.on_array(photo, 2)
    assert up.last_style == "photo" and up.model_for(2.0, "photo").channels == 1
    fixed = Upscaler("default", tile=None, style="photo")
    fixed.on_array(drawing, 2)
    assert fixed.last_style == "photo"
    with pytest.raises(ValueError, match="style"):
        Upscaler("default", style="anime")


def test_drawing_restorers_fall_back_style_by_style(monkeypatch) -> None:
    """A restorer that does not ship is replaced by that of the next style down:
    gray drawings -> drawings -> photos."""
    monkeypatch.setitem(zoo.STYLE_RESTORERS, "illustration", {"noise": "unet-noise-fast", "jpeg": "no-such-model"})
    monkeypatch.setitem(zoo.STYLE_RESTORERS, "manga", {"noise": "no-such-model", "jpeg": "unet-jpeg-art"})
    assert zoo.auto_restorers("illustration") == zoo.AUTO_RESTORERS
    assert zoo.auto_restorers("photo") == zoo.AUTO_RESTORERS
    assert zoo.auto_restorers("manga") == {"noise": "unet-noise-fast", "jpeg": "unet-jpeg-art"}
    monkeypatch.setitem(zoo.STYLE_RESTORERS, "manga", {"noise": "no-such-model", "jpeg": "no-such-model"})
    assert zoo.auto_restorers("manga") == zoo.AUTO_RESTORERS


def test_gray_drawings_go_to_the_manga_model(art_zoo, monkeypatch) -> None:
    """Gray drawings are read as manga and served by the alias's gray drawing model where
    it ships the scale, by the illustration model where only that does, else the photo way."""
    monkeypatch.setitem(zoo.ZOO, "art-gray", zoo.Shipped("art-gray", "ksr", scales=(2,)))
    drawing = np.full((64, 64), 230, np.uint8)
    drawing[20:40, 10:50] = 40
    assert style_of(drawing) == "manga" and style_of(np.repeat(drawing[:, :, None], 3, axis=2)) == "manga"
    assert style_of(np.repeat(drawing[:, :, None], 3, axis=2), gray=False) == "illustration"
    assert zoo.for_style("default", "manga", 2) == "art"  # art-gray x2 absent: the colour drawing model
    save_model(kakudai.create_model("ksr", scale=2, channels=3, width=4, blocks=1),
               art_zoo / "art-gray_x2.safetensors")
    assert zoo.for_style("default", "manga", 2) == "art-gray"
    assert zoo.for_style("default", "manga", 3) == "default"
    monkeypatch.setitem(zoo.ZOO, "art", zoo.Shipped("art", "ksr", scales=(2, 3)))
    (art_zoo / "art_x3.safetensors").touch()
    assert zoo.for_style("default", "manga", 3) == "art"  # no gray model at x3: the colour one
    up = Upscaler("default", tile=None, style="auto")
    assert up.on_array(drawing, 2).shape == (128, 128) and up.last_style == "manga"
    assert up.last_model == "art-gray"
    tinted = np.repeat(drawing[:, :, None], 3, axis=2)
    tinted[..., 2] -= 20  # yellowed paper: not gray
    up.on_array(tinted, 2)
    assert up.last_style == "illustration" and up.last_model == "art"
    assert Upscaler("art-gray").style == "manga" and Upscaler("art").style == "illustration"


def test_drawings_are_cleaned_with_the_restorer_for_drawings(art_zoo, monkeypatch) -> None:
    """Automatic and fixed-level JPEG cleanup both use the illustration restorer for
    drawings (cleaned again from the original when first read as a photo)."""
    monkeypatch.setitem(zoo.ZOO, "unet-jpeg-art", zoo.Shipped("unet-jpeg-art", "unet", task="denoise-jpeg"))
    nets = {}
    photo_jpeg = zoo.AUTO_RESTORERS["jpeg"]
    for name in (photo_jpeg, "unet-jpeg-art"):
        nets[name] = kakudai.create_model("unet", scale=1, channels=3, widths=(4, 8, 8), blocks=1, level_map=True)
        with torch.no_grad():  # an identity (the residual is zero): the drawing stays a drawing
            nets[name].tail.weight.zero_()
        save_model(nets[name], art_zoo / f"{name}.safetensors")
    assert zoo.auto_restorers("illustration")["jpeg"] == "unet-jpeg-art"
    drawing = np.full((64, 64, 3), 200, np.uint8)
    drawing[20:40, 10:50] = (30, 60, 220)

    def used(cleaner) -> str:
        net = cleaner._nets["jpeg"]
        w = next(net.parameters())
        return next(n for n, ref in nets.items() if torch.equal(next(ref.parameters()), w))

    fixed = Upscaler("default", tile=None, denoise=1, style="auto")
    fixed.on_array(drawing, 2)
    assert fixed.last_style == "illustration" and used(fixed._restorers[(1, "illustration")]) == "unet-jpeg-art"
    assert used(fixed._restorers[(1, "photo")]) == photo_jpeg  # the first, photo-way pass
    art = Upscaler("art", tile=None, denoise=1)  # the illustration model named: its restorer from the start
    assert list(art._restorers) == [(1, "illustration")]

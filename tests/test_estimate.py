"""Degradation estimators (ops/estimate.py) and the automatic routing built on them."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from kakudai.ops.estimate import (IJG_LUMA_TABLE, blockiness, ijg_table, jpeg_history, jpeg_quality,
                                  is_gray, jpeg_ringing, noise_sigma, texture_sigma)


def _photo_like(h=160, w=192, seed=0) -> np.ndarray:
    """A smooth colour image with some edges (no noise): blurred random blobs, uint8."""
    g = np.random.default_rng(seed)
    small = g.random((h // 16 + 2, w // 16 + 2, 3))
    img = np.asarray(Image.fromarray((small * 255).astype(np.uint8)).resize((w, h), Image.BICUBIC),
                     dtype=np.float64)
    img[h // 3:h // 2, w // 4:] = 40.0  # a hard edge
    return np.clip(img, 0, 255).round().astype(np.uint8)


def _jpeg(u8: np.ndarray, q: int) -> tuple[np.ndarray, Image.Image]:
    buf = io.BytesIO()
    Image.fromarray(u8).save(buf, format="JPEG", quality=q)
    im = Image.open(io.BytesIO(buf.getvalue()))
    return np.asarray(im.convert("RGB")), im


def test_ijg_table_at_50_is_the_standard_table():
    np.testing.assert_array_equal(ijg_table(50).reshape(-1), IJG_LUMA_TABLE)
    assert ijg_table(100).max() == 1 and ijg_table(1).max() == 255


@pytest.mark.parametrize("q", [5, 10, 25, 50, 60, 75, 85, 90, 95, 98])
def test_quality_from_libjpeg_tables(q):
    _, im = _jpeg(_photo_like(64, 64), q)
    assert jpeg_quality(im.quantization[0]) == q


def test_noise_estimate_on_clean_and_noisy_images():
    clean = _photo_like()
    assert noise_sigma(clean) < 1.0
    g = np.random.default_rng(1)
    for sigma in (5.0, 10.0, 20.0):
        noisy = np.clip(clean + g.normal(0, sigma, clean.shape), 0, 255).round().astype(np.uint8)
        assert noise_sigma(noisy) == pytest.approx(sigma, rel=0.15)
        assert texture_sigma(noisy) >= noise_sigma(noisy) * 0.9


def test_noise_estimate_is_not_fooled_by_fine_texture():
    """Texture alone reads as no white noise; noise on strong texture can hide from the
    white-noise reading, and the texture reading is what then flags it."""
    from kakudai.infer.auto import TEXTURE_MIN_SIGMA
    g = np.random.default_rng(2)
    # Texture: a smooth 2-pixel-period pattern (correlated, unlike white noise).
    yy, xx = np.mgrid[0:160, 0:192]
    tex = 128 + 40 * np.sin(xx * 1.3 + 0.5 * np.sin(yy * 0.2)) * np.sin(yy * 1.1)
    tex = np.clip(tex, 0, 255).round().astype(np.uint8)
    assert noise_sigma(tex) < 3.0 < texture_sigma(tex)
    noisy = np.clip(tex + g.normal(0, 10, tex.shape), 0, 255).round().astype(np.uint8)
    assert texture_sigma(tex) < TEXTURE_MIN_SIGMA < texture_sigma(noisy)


def test_jpeg_history_from_pixels():
    clean = _photo_like()
    assert jpeg_history(clean) is None
    for q in (40, 75, 90):
        dec, _ = _jpeg(clean, q)
        got = jpeg_history(dec)
        assert got is not None and q - 3 <= got <= q
    # A JPEG cropped off its grid and saved losslessly keeps a shifted grid.
    dec, _ = _jpeg(clean, 60)
    got = jpeg_history(dec[3:, 5:])
    assert got is not None and 57 <= got <= 60


def test_blockiness_grows_with_compression():
    clean = _photo_like()
    b = [blockiness(clean)] + [blockiness(_jpeg(clean, q)[0]) for q in (50, 30, 10)]
    assert b == sorted(b) and b[-1] > b[0] + 0.5


@pytest.mark.slow
def test_assess_and_routing():
    import kakudai.api as api
    from kakudai.data.io import ImageData
    from kakudai.infer.auto import assess

    clean = _photo_like()
    g = np.random.default_rng(3)
    noisy = np.clip(clean + g.normal(0, 10, clean.shape), 0, 255).round().astype(np.uint8)
    a = assess(clean)
    assert not a.degraded and a.jpeg_quality is None
    assert assess(noisy).noisy
    dec, _ = _jpeg(clean, 70)
    assert assess(dec).jpeg and assess(dec).jpeg_from == "pixels"
    f = assess(clean, file_quality=60)  # the file's own tables win
    assert f.jpeg_quality == 60 and f.jpeg_from == "file" and f.degraded
    assert "JPEG q60 (file)" in f.describe()

    # Degraded images are cleaned first (noise first, else JPEG at its own quality), whatever
    # the model; clean ones are upscaled as they are.
    up = api.Upscaler("bicubic", denoise="auto", tile=None)
    out = up(ImageData(noisy), 2)
    assert up.last_assessment.noisy and up.last_cleanup.startswith("cleaned: noise at sigma ")
    assert out.pixels.shape == (320, 384, 3)
    plain = api.Upscaler("bicubic", denoise=None, tile=None)(ImageData(noisy), 2)
    # Cleaning removed the noise: far less fine-scale energy than plain bicubic of the noisy input.
    assert texture_sigma(out.pixels) < 0.5 * texture_sigma(plain.pixels)
    up(ImageData(clean), 2)
    assert not up.last_assessment.degraded and up.last_cleanup is None
    assert up.report().endswith("-> upscaled as it is; model bicubic")
    up(ImageData(dec), 2)
    q = assess(dec).jpeg_quality
    assert up.last_cleanup == f"cleaned: JPEG artifacts at quality {q} (pixels)"
    assert up.report().endswith(f"-> cleaned: JPEG artifacts at quality {q} (pixels); model bicubic")
    up3 = api.Upscaler("bicubic", denoise=None)
    up3(ImageData(noisy), 2)
    assert up3.last_assessment is None
    with pytest.raises(ValueError):
        api.Upscaler("default", denoise="sometimes")


def test_cli_verbose_prints_the_reading(tmp_path, capsys):
    from kakudai.cli import main

    src = tmp_path / "photo.jpg"
    Image.fromarray(_photo_like(48, 64)).save(src, quality=60)
    assert main(["upscale", str(src), "-o", str(tmp_path / "out.png"), "-v", "--model", "bicubic"]) == 0
    err = capsys.readouterr().err
    assert "JPEG q60 (file)" in err and "-> cleaned: JPEG artifacts at quality 60 (file)" in err
    with pytest.raises(SystemExit) as e:  # argparse's usage error
        main(["upscale", str(src), "-o", str(tmp_path / "o2.png"), "--denoise", "sometimes"])
    assert e.value.code == 2


@pytest.mark.slow
def test_eval_degrade_option(bench_dir, capsys):
    from kakudai.cli import main

    assert main(["eval", "--model", "bicubic", "--scale", "2", "--degrade", "jpeg:101",
                 str(bench_dir / "Set5")]) == 1
    assert "--degrade" in capsys.readouterr().err
    assert main(["eval", "--model", "bicubic", "--scale", "2", "--degrade", "noise:10", "--json", "--quiet",
                 str(bench_dir / "Set5")]) == 0
    import json
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # Bicubic of noisy inputs scores below the clean protocol's 33.66 dB.
    assert r["degrade"] == "noise:10" and 25.0 < r["psnr"] < 33.0


def test_denoise_auto_strength(tmp_path, capsys):
    """`kakudai denoise` with no strength reads each image: noise -> the noise model at the
    estimated sigma, a JPEG file -> the JPEG model at its own quality, clean -> unchanged."""
    from kakudai.cli import main

    clean = _photo_like(64, 80)
    g = np.random.default_rng(5)
    Image.fromarray(np.clip(clean + g.normal(0, 15, clean.shape), 0, 255).round().astype(np.uint8)).save(
        tmp_path / "noisy.png")
    Image.fromarray(clean).save(tmp_path / "photo.jpg", quality=40)
    Image.fromarray(clean).save(tmp_path / "clean.png")
    out = tmp_path / "out"
    assert main(["denoise", str(tmp_path / "noisy.png"), str(tmp_path / "photo.jpg"), str(tmp_path / "clean.png"),
                 "-o", str(out), "-v"]) == 0
    err = capsys.readouterr().err
    assert "noisy.png: no JPEG trace" in err and "-> noise at sigma 1" in err
    assert "photo.jpg: JPEG q40 (file)" in err and "-> JPEG artifacts at quality 40 (file)" in err
    assert "clean.png" in err and "-> clean: unchanged" in err
    np.testing.assert_array_equal(np.asarray(Image.open(out / "clean.png")), clean)


def test_clipped_noise_protocol(bench_dir):
    from kakudai.evaluation import evaluate_denoise

    ref = evaluate_denoise(None, bench_dir / "Set5", 25.0, with_ssim=False)
    clipped = evaluate_denoise(None, bench_dir / "Set5", 25.0, with_ssim=False, clip=True)
    # The same draws, clipped and rounded: the input PSNR moves (less noise at the clipped ends).
    assert clipped["clip"] and not ref["clip"]
    assert 0.01 < clipped["psnr"] - ref["psnr"] < 1.5


def test_jpeg_history_of_a_drawing_with_clipped_black_and_white() -> None:
    """Drawings clip at black and white around every outline, which knocks those
    blocks' coefficients off the quantisation lattice; the other blocks still tell."""
    import io as _io

    from PIL import Image, ImageDraw

    from kakudai.ops.estimate import jpeg_history
    im = Image.new("RGB", (384, 384), "white")
    d = ImageDraw.Draw(im)
    rng = np.random.default_rng(3)
    for i in range(60):  # overlapping colour fills on white, every other one outlined in black
        x, y = rng.integers(0, 340, 2)
        fill = tuple(int(v) for v in rng.integers(40, 220, 3))
        d.ellipse([x, y, x + int(rng.integers(20, 80)), y + int(rng.integers(20, 80))], fill=fill,
                  outline="black" if i % 2 == 0 else None, width=3)
    buf = _io.BytesIO()
    im.save(buf, "JPEG", quality=75)
    decoded = np.asarray(Image.open(buf).convert("RGB"))
    assert ((decoded == 0) | (decoded == 255)).any(axis=2).mean() > 0.4  # heavily clipped
    q = jpeg_history(decoded)
    assert q is not None and 65 <= q <= 75
    assert jpeg_history(np.asarray(im)) is None  # the drawing itself was never a JPEG


def test_jpeg_history_is_not_fooled_by_a_drawing_on_a_shifted_grid(bench_dir) -> None:
    """A cartoon with few unclipped blocks, whose repeated edges put a wrong 8x8 grid on a
    coarse lattice by chance (score just over the threshold at quality 4): the true grid
    scores far better and answers, near the quality the image was saved at."""
    from kakudai.data.degrade import jpeg_roundtrip
    from kakudai.data.io import read_image_uint8
    from kakudai.ops.resize import imresize_np

    hr = read_image_uint8(bench_dir / "Art10" / "ill_16.png")
    lr = np.clip(np.round(imresize_np(hr.astype(np.float64) / 255, scale=0.5) * 255), 0, 255).astype(np.uint8)
    for q in (50, 75):
        got = jpeg_history(jpeg_roundtrip(lr, q, "4:2:0"))
        assert got is not None and abs(got - q) <= 3, (q, got)
    assert jpeg_history(lr) is None


def _line_art(seed: int = 0, side: int = 384) -> np.ndarray:
    """Black strokes on white, drawn at twice the size and shrunk by MATLAB bicubic (so
    the strokes are anti-aliased as in a downscaled drawing), uint8 RGB."""
    from PIL import ImageDraw

    from kakudai.ops.resize import imresize_np
    im = Image.new("RGB", (2 * side, 2 * side), "white")
    d = ImageDraw.Draw(im)
    rng = np.random.default_rng(seed)
    for i in range(14):
        x, y = (int(v) for v in rng.integers(40, 2 * side - 200, 2))
        w, h = (int(v) for v in rng.integers(60, 200, 2))
        if i % 3 == 0:
            d.ellipse([x, y, x + w, y + h], outline="black", width=6)
        elif i % 3 == 1:
            d.line([x, y, x + w, y + h // 3], fill="black", width=5)
        else:
            d.polygon([(x, y), (x + w, y + h // 2), (x + w // 3, y + h)], outline="black", width=4)
    hr = np.asarray(im, dtype=np.float64) / 255
    return np.clip(np.round(imresize_np(hr, scale=0.5) * 255), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("seed", [0, 1])
def test_jpeg_ringing_reads_line_art_on_white(seed) -> None:
    """Black strokes on white: every block with detail holds clipped samples, so the
    quantisation lattice has nothing to read, but the ringing left on the white
    background between strokes and block edges gives the JPEG away; the same drawing
    never compressed, and with white noise instead, is not taken for a JPEG."""
    from kakudai.data.degrade import jpeg_roundtrip
    from kakudai.infer.auto import RINGING_MIN_ALIGNMENT, RINGING_MIN_STEPS, RINGING_QUALITY, assess

    clean = _line_art(seed)
    assert jpeg_ringing(clean)[0] < RINGING_MIN_STEPS // 10
    assert not assess(clean).jpeg
    for q in (50, 75, 85):
        for img in (jpeg_roundtrip(clean, q, "4:2:0"), jpeg_roundtrip(255 - clean, q, "4:2:0")):
            assert jpeg_history(img) is None  # what this reading is for
            steps, share, _ = jpeg_ringing(img)
            assert steps >= RINGING_MIN_STEPS and share >= RINGING_MIN_ALIGNMENT, (q, steps, share)
            a = assess(img)
            assert a.jpeg and a.jpeg_from == "ringing" and a.jpeg_quality == RINGING_QUALITY
            assert "JPEG of unknown quality (ringing)" in a.describe()
    # Faint noise makes as many background steps, but off any grid.
    g = np.random.default_rng(seed)
    noisy = np.clip(clean + g.normal(0, 1.0, clean.shape), 0, 255).round().astype(np.uint8)
    steps, share, _ = jpeg_ringing(noisy)
    assert steps >= RINGING_MIN_STEPS and share < RINGING_MIN_ALIGNMENT
    assert not assess(noisy).jpeg


def test_clean_benchmark_images_are_not_taken_for_jpegs(bench_dir) -> None:
    """No clean image of the photo and drawing benchmarks, at x2 and x4, is read as a
    JPEG, by its lattice or by its ringing."""
    from kakudai.data.datasets import benchmark_set
    from kakudai.infer.auto import assess

    for name in ("Set5", "Set14", "Kodak24", "Art10"):
        for scale in (2, 4):
            for it in benchmark_set(bench_dir / name, scale):
                assert not assess(it.lr).jpeg, (name, scale, it.name)
                # Gray images are read for ringing from a lower flat share (manga pages).
                gray = np.asarray(Image.fromarray(it.lr).convert("L"))
                assert not assess(gray).jpeg, (name, scale, it.name, "gray")


def test_jpeg_of_a_gray_page_with_dot_screens_is_read() -> None:
    """A gray page whose mid-tones are dot screens: ink and paper clip every block, and
    the dots keep its flat share under a colour drawing's; its JPEG is read from ringing."""
    from kakudai.infer.auto import DRAWN_MIN_FLAT, RINGING_MIN_FLAT_GRAY, _crops, _flat_share, assess
    from kakudai.ops.screentone import screentone

    page = np.full((512, 512), 255, np.uint8)
    page[40:100, 40:470] = 150  # toned panels
    page[260:480, 60:300] = 90
    for y in range(30, 500, 37):
        page[y:y + 2, 20:490] = 0  # ink strokes
    page[:, 250:252] = 0
    hr = screentone(page, period=6.0)
    lr = np.asarray(Image.fromarray(hr).resize((256, 256), Image.BICUBIC))
    assert not assess(lr).jpeg
    jpeg = _jpeg(np.repeat(lr[:, :, None], 3, axis=2), 75)[0]
    flat = _flat_share(_crops(jpeg, 2))
    assert RINGING_MIN_FLAT_GRAY <= flat < DRAWN_MIN_FLAT, flat  # a colour drawing's ringing gate stays shut
    assert assess(jpeg).jpeg and assess(jpeg).jpeg_from == "ringing"


def test_a_chance_lattice_fit_on_a_clean_drawing_is_dropped(bench_dir) -> None:
    """A cartoon whose repeated edges fit a coarse quantisation lattice by chance: its
    white background next to the strokes shows no ringing, so it is not taken for a
    JPEG, while the same image saved as one is."""
    from kakudai.data.degrade import jpeg_roundtrip
    from kakudai.data.io import read_image_uint8
    from kakudai.infer.auto import DEGRADATION_GRID, _crops, assess
    from kakudai.ops.resize import imresize_np

    path = bench_dir.parent / "train" / "art" / "characters_53.png"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    hr = read_image_uint8(path)
    lr = np.clip(np.round(imresize_np(hr.astype(np.float64) / 255, scale=0.5) * 255), 0, 255).astype(np.uint8)
    assert any(jpeg_history(c) is not None for c in _crops(lr, DEGRADATION_GRID))  # the chance fit
    assert not assess(lr).jpeg
    assert assess(jpeg_roundtrip(lr, 75, "4:2:0")).jpeg


def test_is_gray_across_layouts_and_a_colour_jpeg() -> None:
    rng = np.random.default_rng(5)
    g = rng.integers(0, 256, (48, 64)).astype(np.uint8)
    rgb = np.repeat(g[:, :, None], 3, axis=2)
    assert is_gray(g) and is_gray(g[:, :, None]) and is_gray(rgb)
    assert is_gray(rgb.astype(np.uint16) * 257) and is_gray(rgb.astype(np.float32) / 255)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=75)  # a gray page saved as a colour JPEG
    assert is_gray(np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")))
    sepia = rgb.copy()
    sepia[..., 2] = np.maximum(sepia[..., 2], 12) - 12
    assert not is_gray(sepia)
    spot = rgb.copy()
    spot[:4, :4] = (255, 0, 0)  # a red mark on 0.5% of the page
    assert not is_gray(spot)

"""Image modes, bit depths and metadata through reading, upscaling and writing."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms, ImageOps

import kakudai
from kakudai.data.io import (ImageData, ImageReadError, ImageWriteError, read_image, srgb_profile,
                             write_image)
from kakudai.infer.upscale import super_resolve
from kakudai.ops.alpha import fill_transparent
from kakudai.ops.resize import imresize_np

RNG = np.random.default_rng(0)


def smooth(h: int, w: int, c: int, peak: int = 255, dtype=np.uint8) -> np.ndarray:
    """A smooth random image (so bicubic has structure to work on), values in [0, peak]."""
    small = RNG.random((h // 4 + 2, w // 4 + 2, c))
    big = imresize_np(small, size=(h, w))
    return np.clip(np.round(np.clip(big, 0, 1) * peak), 0, peak).astype(dtype)


def bicubic_ref(a: np.ndarray, scale: int = 2, peak: int = 255) -> np.ndarray:
    """The expected bicubic output of integer samples, rounded (reference path)."""
    out = imresize_np(a.astype(np.float64) / peak, scale=scale)
    return np.round(np.clip(out, 0, 1) * peak)


def up(src: Path, dst: Path, **kw) -> Path:
    return kakudai.upscale(src, scale=2, model="bicubic", output=dst, **kw)


# --------------------------------------------------------------------------- modes
def test_rgba_alpha_survives_and_is_upscaled(tmp_path):
    rgba = smooth(24, 30, 4)
    rgba[:8, :, 3] = 0  # a fully transparent band: must stay transparent
    rgba[12:, :, 3] = np.maximum(rgba[12:, :, 3], 60)  # and an opaque-ish rest
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    up(tmp_path / "a.png", tmp_path / "b.png")
    out = Image.open(tmp_path / "b.png")
    assert out.mode == "RGBA" and out.size == (60, 48)
    a = np.asarray(out)
    assert np.abs(a[..., 3] - bicubic_ref(rgba[..., 3])).max() <= 1
    # Colour: upscaled after the hidden colour under alpha 0 is filled from visible pixels.
    filled = np.clip(imresize_np(fill_transparent(rgba[..., :3], rgba[..., 3]).astype(np.float64), scale=2), 0, 1)
    assert np.abs(a[..., :3] - np.round(filled * 255)).max() <= 1
    assert (a[:12, :, 3] == 0).all() and a[28:, :, 3].min() >= 40


def test_alpha_model_or_bicubic(tmp_path):
    """--alpha model runs the network on the alpha plane; --alpha bicubic does not."""
    torch.manual_seed(0)
    net = kakudai.create_model("espcn", scale=2, channels=1).eval()
    rgba = smooth(20, 22, 4)
    by_model = kakudai.upscale(rgba, scale=2, model=net, alpha="model")
    by_bicubic = kakudai.upscale(rgba, scale=2, model=net, alpha="bicubic")
    assert by_model.shape == by_bicubic.shape == (40, 44, 4)
    assert np.abs(by_bicubic[..., 3] - bicubic_ref(rgba[..., 3])).max() <= 1
    x = torch.from_numpy(rgba[..., 3].astype(np.float32) / 255)[None, None]
    ref = super_resolve(net, x, 2)[0, 0].numpy() * 255
    assert np.abs(by_model[..., 3] - np.round(ref)).max() <= 1
    assert np.abs(by_model[..., 3].astype(int) - by_bicubic[..., 3]).max() > 2  # really different


def test_la_stays_gray_with_alpha(tmp_path):
    la = smooth(16, 20, 2)
    Image.fromarray(la, "LA").save(tmp_path / "a.png")
    up(tmp_path / "a.png", tmp_path / "b.png")
    out = Image.open(tmp_path / "b.png")
    assert out.mode == "LA" and out.size == (40, 32)
    got = np.asarray(out).astype(int)
    assert np.abs(got[..., 1] - bicubic_ref(la[..., 1])).max() <= 1
    gray = np.clip(imresize_np(fill_transparent(la[..., :1], la[..., 1]).astype(np.float64), scale=2), 0, 1)
    assert np.abs(got[..., 0] - np.round(gray[..., 0] * 255)).max() <= 1


def test_l_stays_gray(tmp_path):
    g = smooth(16, 20, 1)[..., 0]
    Image.fromarray(g, "L").save(tmp_path / "a.png")
    up(tmp_path / "a.png", tmp_path / "b.jpg")  # also through a format change
    up(tmp_path / "a.png", tmp_path / "b.png")
    assert Image.open(tmp_path / "b.jpg").mode == "L"
    out = Image.open(tmp_path / "b.png")
    assert out.mode == "L"
    assert np.abs(np.asarray(out).astype(int) - bicubic_ref(g)).max() <= 1


def test_palette_is_expanded(tmp_path):
    rgb = smooth(16, 20, 3)
    p = Image.fromarray(rgb).quantize(16)
    p.save(tmp_path / "a.png")
    expanded = np.asarray(p.convert("RGB"))
    up(tmp_path / "a.png", tmp_path / "b.png")
    out = Image.open(tmp_path / "b.png")
    assert out.mode == "RGB"
    assert np.abs(np.asarray(out).astype(int) - bicubic_ref(expanded)).max() <= 1
    # A palette with a transparent entry becomes RGBA.
    p.info["transparency"] = 0
    p.save(tmp_path / "t.png", transparency=0)
    up(tmp_path / "t.png", tmp_path / "t2.png")
    assert Image.open(tmp_path / "t2.png").mode == "RGBA"


@pytest.mark.parametrize("ext", ["png", "tif"])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_16bit_stays_16bit_and_matches_8bit_path(tmp_path, ext, channels):
    a8 = smooth(14, 18, channels)
    a16 = a8.astype(np.uint16) * 257  # the same picture, exactly, in 16 bits
    src16 = tmp_path / f"a16.{ext}"
    write_image(src16, ImageData(a16[..., :min(channels, 3)], a16[..., 3] if channels == 4 else None))
    src8 = tmp_path / f"a8.{ext}"
    write_image(src8, ImageData(a8[..., :min(channels, 3)], a8[..., 3] if channels == 4 else None))
    d16 = read_image(src16)
    assert d16.pixels.dtype == np.uint16 and (d16.pixels == a16[..., :min(channels, 3)]).all()
    up(src16, tmp_path / f"b16.{ext}")
    up(src8, tmp_path / f"b8.{ext}")
    o16, o8 = read_image(tmp_path / f"b16.{ext}"), read_image(tmp_path / f"b8.{ext}")
    assert o16.pixels.dtype == np.uint16 and o8.pixels.dtype == np.uint8
    assert o16.pixels.shape == (28, 36, min(channels, 3))
    # Within rounding of the 8-bit path...
    assert np.abs(o16.pixels / 257.0 - o8.pixels).max() <= 0.51
    if channels == 4:
        assert o16.alpha.dtype == np.uint16 and np.abs(o16.alpha / 257.0 - o8.alpha).max() <= 0.51
    # ...and really 16-bit: interpolated values fall between the 8-bit levels.
    assert (o16.pixels % 257 != 0).mean() > 0.5
    if channels == 1 and ext == "png":
        assert Image.open(tmp_path / "b16.png").mode.startswith("I;16")


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def test_16bit_rgb_png_with_every_row_filter(tmp_path):
    """Pillow keeps only 8 bits of 16-bit colour; our reader gets all 16, whatever the filters."""
    h, w, bpp = 10, 9, 6
    a = RNG.integers(0, 65536, (h, w, 3)).astype(">u2")
    rows, prev = [], bytes(w * bpp)
    for i in range(h):
        r, ft, out = a[i].tobytes(), i % 5, bytearray()
        for j in range(len(r)):
            left = r[j - bpp] if j >= bpp else 0
            upl = prev[j - bpp] if j >= bpp else 0
            pa, pb, pc = abs(prev[j] - upl), abs(left - upl), abs(left + prev[j] - 2 * upl)
            paeth = left if pa <= pb and pa <= pc else (prev[j] if pb <= pc else upl)
            pred = [0, left, prev[j], (left + prev[j]) // 2, paeth][ft]
            out.append((r[j] - pred) & 255)
        rows.append(bytes([ft]) + bytes(out))
        prev = r
    png = (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
           + _png_chunk(b"IDAT", zlib.compress(b"".join(rows))) + _png_chunk(b"IEND", b""))
    (tmp_path / "f.png").write_bytes(png)
    d = read_image(tmp_path / "f.png")
    assert d.pixels.dtype == np.uint16 and (d.pixels == a.astype(np.uint16)).all()


# --------------------------------------------------------------------------- CMYK
def _cmyk_profile() -> bytes:
    """A tiny ICC v2 CMYK input profile (lut8 A2B0 to Lab) that is far from naive 1-x.

    Lab(c, m, y, k): lightness from k and the inks, and a tint: cyan pushes a*
    and b* strongly negative, magenta a* positive, yellow b* positive.
    """
    g = 3
    grid = np.linspace(0, 1, g)
    clut = bytearray()
    for c in grid:
        for m in grid:
            for y in grid:
                for k in grid:
                    L = 100 * (1 - k) * (1 - 0.25 * (c + m + y))
                    a = 128 + 70 * (m - c) - 20 * y
                    b = 128 + 70 * (y - c) - 10 * m
                    clut += bytes([round(L * 2.55), int(np.clip(round(a), 0, 255)),
                                   int(np.clip(round(b), 0, 255))])
    ramp = bytes(range(256))
    lut = (b"mft1" + bytes(4) + bytes([4, 3, g, 0])
           + b"".join(struct.pack(">i", v) for v in (65536, 0, 0, 0, 65536, 0, 0, 0, 65536))
           + ramp * 4 + bytes(clut) + ramp * 3)
    desc_text = b"kakudai test CMYK\x00"
    desc = (b"desc" + bytes(4) + struct.pack(">I", len(desc_text)) + desc_text
            + bytes(4) + bytes(4) + bytes(2) + bytes(1) + bytes(67))
    wtpt = b"XYZ " + bytes(4) + b"".join(struct.pack(">i", round(v * 65536)) for v in (0.9642, 1.0, 0.8249))
    cprt = b"text" + bytes(4) + b"none\x00"
    tags = [(b"desc", desc), (b"wtpt", wtpt), (b"cprt", cprt), (b"A2B0", lut)]
    offset = 128 + 4 + 12 * len(tags)
    table, body = struct.pack(">I", len(tags)), b""
    for sig, data in tags:
        data += bytes((-len(data)) % 4)
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = (struct.pack(">I", size) + b"lcms" + struct.pack(">I", 0x02100000) + b"scnr" + b"CMYK"
              + b"Lab " + bytes(12) + b"acsp" + bytes(4) + bytes(4) + bytes(8) + bytes(8)
              + struct.pack(">I", 0) + b"".join(struct.pack(">i", round(v * 65536)) for v in (0.9642, 1.0, 0.8249))
              + bytes(4))
    header += bytes(128 - len(header))
    return header + table + body


def test_cmyk_jpeg_converted_through_its_profile(tmp_path):
    icc = _cmyk_profile()
    cmyk = Image.fromarray(smooth(16, 20, 4), "CMYK")
    cmyk.save(tmp_path / "c.jpg", quality=95, icc_profile=icc)
    with Image.open(tmp_path / "c.jpg") as im:
        assert im.mode == "CMYK"
        decoded = im.copy()
    reference = np.asarray(ImageCms.profileToProfile(
        decoded, ImageCms.ImageCmsProfile(__import__("io").BytesIO(icc)), ImageCms.createProfile("sRGB"),
        outputMode="RGB"))
    naive = np.asarray(decoded.convert("RGB"))
    d = read_image(tmp_path / "c.jpg")
    assert d.pixels.shape == (16, 20, 3) and d.alpha is None
    assert np.abs(d.pixels.astype(int) - reference).max() <= 1
    assert np.abs(d.pixels.astype(int) - naive).mean() > 20  # the profile mattered
    up(tmp_path / "c.jpg", tmp_path / "d.png")
    out = Image.open(tmp_path / "d.png")
    assert out.mode == "RGB" and out.size == (40, 32)
    icc_out, srgb = out.info.get("icc_profile") or b"", srgb_profile()
    # the pixels are sRGB now (bytes 24-35 of an ICC header are its creation time)
    assert icc_out[:24] + icc_out[36:] == srgb[:24] + srgb[36:]
    assert np.abs(np.asarray(out).astype(int) - bicubic_ref(d.pixels)).max() <= 1


# --------------------------------------------------------------------------- EXIF / ICC
def test_exif_rotated_jpeg_comes_out_upright(tmp_path):
    upright = np.zeros((20, 30, 3), np.uint8)
    upright[:10] = (250, 0, 0)  # red on top
    upright[10:] = (0, 0, 250)  # blue below
    upright[:, :5] = (0, 250, 0)  # green on the left
    stored = np.rot90(upright, k=1)  # what a camera held sideways stores...
    exif = Image.Exif()
    exif[0x0112] = 6  # ...and the tag that says "rotate 90 clockwise to view"
    exif[0x010F] = "kakudai-cam"
    Image.fromarray(np.ascontiguousarray(stored)).save(tmp_path / "r.jpg", exif=exif.tobytes(), quality=98)
    shown = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "r.jpg"))).astype(int)
    assert shown[3, 20, 0] > 200 and shown[16, 20, 2] > 200 and shown[10, 1, 1] > 200  # fixture sanity
    up(tmp_path / "r.jpg", tmp_path / "u.jpg")
    out = Image.open(tmp_path / "u.jpg")
    assert out.size == (60, 40)  # landscape, like the upright picture
    a = np.asarray(out).astype(int)
    assert a[5, 40, 0] > 200 and a[35, 40, 2] > 200 and a[20, 3, 1] > 200
    ex = out.getexif()
    assert ex.get(0x0112, 1) == 1 and ex.get(0x010F) == "kakudai-cam"


@pytest.mark.parametrize("ext", ["png", "jpg", "webp", "tif"])
def test_icc_profile_and_exif_carried(tmp_path, ext):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()  # any non-sRGB profile
    exif = Image.Exif()
    exif[0x010F] = "kakudai-cam"
    exif[0x0112] = 1
    Image.fromarray(smooth(12, 14, 3)).save(tmp_path / "a.png", icc_profile=icc, exif=exif.tobytes())
    up(tmp_path / "a.png", tmp_path / f"b.{ext}")
    out = Image.open(tmp_path / f"b.{ext}")
    assert out.info.get("icc_profile") == icc
    assert out.getexif().get(0x010F) == "kakudai-cam"


def test_pil_and_array_kinds_round_trip():
    rgb = smooth(10, 12, 3)
    im = Image.fromarray(rgb)
    im.info["icc_profile"] = srgb_profile()
    out = kakudai.upscale(im, scale=2, model="bicubic")
    assert isinstance(out, Image.Image) and out.size == (24, 20) and out.info["icc_profile"] == srgb_profile()
    for arr in (rgb, rgb[..., 0], smooth(10, 12, 2), smooth(10, 12, 4), rgb.astype(np.uint16) * 257,
                rgb.astype(np.float32) / 255):
        res = kakudai.upscale(arr, scale=2, model="bicubic")
        assert res.dtype == arr.dtype and res.shape == (20, 24) + arr.shape[2:]
    gray16 = Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)
    assert kakudai.upscale(gray16, scale=2, model="bicubic").mode == "I;16"


def test_fit_to_width_height(tmp_path):
    rgb = smooth(30, 40, 3)
    assert kakudai.upscale(rgb, model="bicubic", width=100).shape == (75, 100, 3)
    assert kakudai.upscale(rgb, model="bicubic", height=45).shape == (45, 60, 3)
    assert kakudai.upscale(rgb, model="bicubic", width=100, height=60).shape == (60, 80, 3)
    # A fixed-scale model: runs at its scale, then MATLAB bicubic to the exact size.
    net = kakudai.create_model("ksr", scale=[2, 3], channels=1).eval()
    assert kakudai.upscale(rgb, model=net, width=70).shape == (52, 70, 3)
    assert kakudai.upscale(rgb, model=net, scale=2.5).shape == (75, 100, 3)


# --------------------------------------------------------------------------- guards
def test_pixel_limit_checked_from_the_header(tmp_path):
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    bomb = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 100))
    (tmp_path / "bomb.png").write_bytes(bomb + _png_chunk(b"IEND", b""))
    with pytest.raises(ImageReadError, match="max-pixels"):
        read_image(tmp_path / "bomb.png")
    Image.fromarray(smooth(20, 20, 3)).save(tmp_path / "ok.png")
    assert read_image(tmp_path / "ok.png", max_pixels=400).pixels.shape == (20, 20, 3)
    with pytest.raises(ImageReadError, match="max-pixels"):
        read_image(tmp_path / "ok.png", max_pixels=399)


def test_read_errors_are_one_kind(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_bytes(b"hello")
    Image.fromarray(smooth(20, 20, 3)).save(tmp_path / "full.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "full.png").read_bytes()[:200])
    for name, words in [("empty.png", "empty"), ("text.png", "not an image"), ("cut.png", "truncated"),
                        ("missing.png", "no such file")]:
        with pytest.raises(ImageReadError, match=words):
            read_image(tmp_path / name)


def test_write_is_atomic(tmp_path):
    d = ImageData(smooth(8, 8, 3))
    dst = tmp_path / "x.png"
    dst.write_bytes(b"previous")
    with pytest.raises(ImageWriteError):
        write_image(dst, d, format="NOSUCHFORMAT")
    assert dst.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]  # no temporary file left
    write_image(dst, d)
    assert Image.open(dst).size == (8, 8)


def test_an_interrupt_wrapped_by_python_is_still_an_interrupt(tmp_path, monkeypatch) -> None:
    """A Ctrl-C inside a lazy Pillow plugin import reaches us as RuntimeError caused by
    KeyboardInterrupt: writing and reading must re-raise the interrupt (no 'cannot
    write' error, no batch that carries on) and leave no temporary file."""
    import kakudai.data.io as kio

    def wrapped(*_a, **_k):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as e:
            raise RuntimeError("Error calling __set_name__ on 'cached_property' instance") from e

    data = ImageData(pixels=np.zeros((4, 4, 3), np.uint8), alpha=None, icc=None, exif=None)
    monkeypatch.setattr(kio, "_encode", wrapped)
    with pytest.raises(KeyboardInterrupt):
        kio.write_image(tmp_path / "out.png", data)
    assert list(tmp_path.iterdir()) == []
    # A genuine encoder error is still a one-line write error.
    monkeypatch.setattr(kio, "_encode", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(ImageWriteError, match="boom"):
        kio.write_image(tmp_path / "out.png", data)

    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "in.png")
    monkeypatch.setattr(kio, "_normalise", wrapped)
    with pytest.raises(KeyboardInterrupt):
        kio.read_image(tmp_path / "in.png")

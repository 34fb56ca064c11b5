"""Hundreds of malformed files through ``kakudai upscale`` in one run.

Truncated, bit-flipped, zero-byte, wrong-extension and absurd-header files sit
in one folder beside valid images. One CLI process handles them all: no
traceback, exactly one error line per failed file, no output (and no temporary
file) for a failed file, exit code 1, and every valid file converted.
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
FORMATS = {"png": "PNG", "jpg": "JPEG", "gif": "GIF", "bmp": "BMP", "tif": "TIFF", "webp": "WEBP",
           "ppm": "PPM"}


def _seed_bytes(fmt: str, rng: np.random.Generator) -> bytes:
    a = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format=FORMATS[fmt])
    return buf.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _absurd_headers() -> dict[str, bytes]:
    """Well-formed headers claiming gigapixel sizes, with almost no data behind them."""
    out = {}
    for i, (w, h) in enumerate([(100_000, 100_000), (2**31 - 1, 1), (1, 2**31 - 1), (40_000, 40_000)]):
        out[f"png{i}.png"] = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                              + _chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _chunk(b"IEND", b""))
    out["png_zero.png"] = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 0, 8, 2, 0, 0, 0))
                           + _chunk(b"IEND", b""))
    for i, (w, h) in enumerate([(65_500, 65_500), (65_535, 30_000)]):
        sof = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, h, w, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
        sos = b"\xff\xda\x00\x0c\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00"
        out[f"jpeg{i}.jpg"] = b"\xff\xd8" + sof + sos + b"\0" * 50 + b"\xff\xd9"
    out["gif.gif"] = (b"GIF89a" + struct.pack("<HHBBB", 65_535, 65_535, 0, 0, 0)
                      + b"\x2c" + struct.pack("<HHHHB", 0, 0, 65_535, 65_535, 0) + b"\x08\x02\x4c\x01\x00\x3b")
    bmp_info = struct.pack("<IiiHHIIiiII", 40, 60_000, 60_000, 1, 24, 0, 0, 2835, 2835, 0, 0)
    out["bmp.bmp"] = b"BM" + struct.pack("<IHHI", 54 + 16, 0, 0, 54) + bmp_info + b"\0" * 16
    out["ppm.ppm"] = b"P6\n100000 100000\n255\n" + b"\0" * 30
    ifd = [(256, 4, 1, 90_000), (257, 4, 1, 90_000), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
           (273, 4, 1, 8), (277, 3, 1, 1), (278, 4, 1, 90_000), (279, 4, 1, 16)]
    tif = b"II*\x00" + struct.pack("<I", 8 + 16) + b"\0" * 16 + struct.pack("<H", len(ifd))
    for tag, typ, n, v in ifd:
        tif += struct.pack("<HHII", tag, typ, n, v)
    out["tif.tif"] = tif + struct.pack("<I", 0)
    return out


def build_corpus(folder: Path) -> tuple[list[Path], list[Path]]:
    """(valid files, malformed files) written into ``folder``."""
    rng = np.random.default_rng(1234)
    valid, bad = [], []
    seeds = {fmt: _seed_bytes(fmt, rng) for fmt in FORMATS}
    for fmt, data in seeds.items():
        p = folder / f"valid_{fmt}.{fmt}"
        p.write_bytes(data)
        valid.append(p)
    for fmt, data in seeds.items():
        for k, frac in enumerate(np.linspace(0.05, 0.9, 9)):  # truncated
            p = folder / f"trunc_{fmt}_{k}.{fmt}"
            p.write_bytes(data[:max(1, int(len(data) * frac))])
            bad.append(p)
        for k in range(14):  # bit flips: 1-4 random bits anywhere, header included
            b = bytearray(data)
            for _ in range(1 + k % 4):
                pos = int(rng.integers(0, len(b)))
                b[pos] ^= 1 << int(rng.integers(0, 8))
            p = folder / f"flip_{fmt}_{k}.{fmt}"
            p.write_bytes(bytes(b))
            bad.append(p)
        p = folder / f"zero_{fmt}.{fmt}"  # zero bytes
        p.write_bytes(b"")
        bad.append(p)
        for k in range(3):  # random bytes, and text, under an image extension
            p = folder / f"junk_{fmt}_{k}.{fmt}"
            p.write_bytes(rng.integers(0, 256, 50 + 200 * k, dtype=np.uint8).tobytes() if k else b"hello\n")
            bad.append(p)
        other = {"png": "jpg", "jpg": "png", "gif": "bmp", "bmp": "gif", "tif": "webp", "webp": "tif",
                 "ppm": "png"}[fmt]
        p = folder / f"wrongext_{fmt}.{other}"  # wrong extension, valid content
        p.write_bytes(data)
        bad.append(p)
        p = folder / f"wrongext_trunc_{fmt}.{other}"
        p.write_bytes(data[: len(data) // 3])
        bad.append(p)
    for name, data in _absurd_headers().items():
        p = folder / f"huge_{name}"
        p.write_bytes(data)
        bad.append(p)
    return valid, bad


@pytest.mark.slow
def test_fuzz_batch(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    valid, bad = build_corpus(src)
    assert len(bad) >= 200
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "kakudai", "upscale", str(src), "-o", str(out),
                           "--model", "bicubic", "--threads", "1"],
                          capture_output=True, text=True, env=env, timeout=600)
    err = proc.stderr.splitlines()
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert proc.returncode == 1
    failed: dict[str, str] = {}
    for line in err[:-1]:
        assert line.startswith("kakudai: error: "), line  # nothing but one-line errors...
        path, reason = line[len("kakudai: error: "):].split(": ", 1)
        assert path not in failed, f"two error lines for {path}"
        assert reason and "\n" not in reason
        failed[path] = reason
    summary = err[-1]  # ...and the summary
    n_done = len(valid) + len(bad) - len(failed)
    assert summary.startswith(f"kakudai: {n_done} done, 0 skipped, {len(failed)} failed"), summary
    assert not failed.keys() & {str(p) for p in valid}
    for p in valid:  # every valid file converted, at twice the size
        with Image.open(out / p.name) as im:
            assert im.size == (24, 20)
    for p in bad:
        dst = out / p.name
        if str(p) in failed:
            assert not dst.exists(), f"output left for failed input {p.name}"
        else:  # a damaged file can still decode (e.g. flipped bits in pixel data): a full image then
            with Image.open(dst) as im:
                im.load()
    # Every truncated, empty, junk or absurd-size file fails; flipped bits in pixel data
    # (formats without checksums) may still decode, and so does valid content under
    # a wrong extension (the content decides the format, not the name).
    must_fail = [p for p in bad if p.name.startswith(("trunc_", "zero_", "huge_", "junk_", "wrongext_trunc_"))]
    assert len(must_fail) >= 100 and all(str(p) in failed for p in must_fail)
    assert all(str(p) not in failed for p in bad if p.name.startswith("wrongext_") and "trunc" not in p.name)
    assert len(failed) >= 120
    assert not [p.name for p in out.rglob(".*")]  # no temporary files left

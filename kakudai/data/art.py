"""Illustration training images rendered from public-domain SVG clip art.

Source: Debian's ``openclipart-svg`` package (``apt-get install openclipart-svg``),
the Open Clip Art Library's drawings under its Public Domain Dedication. Rasteriser:
``resvg-py`` (``pip install "kakudai[art]"``), a self-contained wheel.

Each drawing is rendered so that its longer side is ``size`` pixels and composited
over a light background (white for most drawings, else a flat light colour or a
soft two-colour gradient), because many drawings are transparent. The result is an
8-bit RGB PNG named after the SVG. Drawings that fail to parse, embed raster images
(their pixels would be enlarged, not rendered), are too thin, or are near-empty over
white (fewer than 3% pixels away from the dominant colour, or almost no variation)
are skipped and counted in ``manifest.json``.

Deterministic: the order and the background of a drawing depend only on its file
name and the seed, so ``--limit`` takes the same drawings every time and a larger
limit extends a smaller one. Resumable: PNGs already in the folder, and drawings
the manifest records as skipped, are not rendered again. Text in a drawing uses
the machine's system fonts (Debian: DejaVu): they and the rasteriser's version (in
the manifest) are the inputs that can differ between machines.

    python -m kakudai.data.art [--limit N] [--size 1024] [--seed 0] [--out DIR]

writes to ``cache_dir() / "art" / f"openclipart-{size}"`` by default, the folder a
training config names as ``$KAKUDAI_CACHE/art/openclipart-<size>``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .datasets import cache_dir
from .io import ImageData, from_pil, write_image

__all__ = ["MissingDependency", "SkipReason", "openclipart_svgs", "openclipart_source",
           "render_svgs", "select", "background", "default_out_dir", "main"]

PACKAGE = "openclipart-svg"
LICENSE = ("Creative Commons Public Domain Dedication / Certification "
           "(/usr/share/doc/openclipart-svg/copyright)")
MANIFEST = "manifest.json"

# Skip thresholds, measured on the drawing composited over white.
MIN_COVERAGE = 0.03  # share of pixels away from the dominant colour
INK_DELTA = 8 / 255  # how far (max over channels) a pixel must be from it to count
MIN_STD = 0.02  # standard deviation of all samples, [0, 1] units
# Background kinds: white, a flat light colour, a soft gradient.
BACKGROUND_PROBS = {"white": 0.7, "flat": 0.15, "gradient": 0.15}
# shapes/stars holds 1,375 machine-made star polygons (star_<points>pt<step>step), a
# fifth of the package and thin-line near-duplicates of one another: 1 in 20 is kept.
NEAR_DUPLICATES = re.compile(r"star_\d+pt\d+step")
NEAR_DUPLICATES_KEEP = 20


class MissingDependency(RuntimeError):
    """The SVG package or the rasteriser is not installed; the message says what to install."""


class SkipReason:
    PARSE = "parse_error"
    RASTER = "embedded_raster"
    THIN = "too_small"
    EMPTY = "near_empty"
    FLAT = "flat"


def default_out_dir(size: int) -> Path:
    return cache_dir() / "art" / f"openclipart-{size}"


def openclipart_svgs() -> list[Path]:
    """The package's SVG files (``dpkg -L openclipart-svg``), sorted."""
    try:
        out = subprocess.run(["dpkg", "-L", PACKAGE], capture_output=True, text=True)
    except FileNotFoundError:
        raise MissingDependency(f"dpkg not found: {PACKAGE} is a Debian package "
                                f"(apt-get install {PACKAGE})") from None
    if out.returncode != 0:
        raise MissingDependency(f"{PACKAGE} is not installed: apt-get install {PACKAGE}")
    files = sorted(Path(line) for line in out.stdout.splitlines() if line.endswith(".svg"))
    if not files:
        raise MissingDependency(f"{PACKAGE} lists no SVG files: apt-get install --reinstall {PACKAGE}")
    return files


def openclipart_source() -> dict[str, str]:
    """Package name, version and licence, for the manifest."""
    out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", PACKAGE], capture_output=True, text=True)
    return {"package": PACKAGE, "version": out.stdout.strip() if out.returncode == 0 else "unknown",
            "license": LICENSE}


def _import_rasteriser():
    try:
        import resvg_py
    except ImportError:
        raise MissingDependency('resvg-py is not installed: pip install "kakudai[art]" '
                                "(or pip install resvg-py)") from None
    return resvg_py


def _order_key(name: str, seed: int) -> str:
    return hashlib.sha1(f"{seed}:{name}".encode()).hexdigest()


def select(names: Sequence[str], seed: int, limit: int | None = None, skip: int = 0) -> list[str]:
    """Drawing names in rendering order: fixed by name and seed, the near-duplicate
    family thinned to 1 in ``NEAR_DUPLICATES_KEEP``, the first ``limit`` of them after
    the first ``skip`` (``skip`` = a training set's limit: drawings it never saw)."""
    keep = [n for n in names if not NEAR_DUPLICATES.fullmatch(n)
            or int(_order_key(n, seed), 16) % NEAR_DUPLICATES_KEEP == 0]
    order = sorted(keep, key=lambda n: _order_key(n, seed))[skip:]
    return order[:limit]


def _rng(name: str, seed: int) -> np.random.Generator:
    return np.random.default_rng(int(hashlib.sha1(f"bg:{seed}:{name}".encode()).hexdigest()[:16], 16))


def _light_colour(rng: np.random.Generator) -> np.ndarray:
    """A pale RGB colour in [0, 1]: high value, low saturation, any hue."""
    import colorsys
    return np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.03, 0.3), rng.uniform(0.85, 1.0)),
                    dtype=np.float32)


def _background_kind(rng: np.random.Generator) -> str:
    kinds = list(BACKGROUND_PROBS)
    return kinds[rng.choice(len(kinds), p=list(BACKGROUND_PROBS.values()))]


def background(h: int, w: int, rng: np.random.Generator) -> tuple[str, np.ndarray]:
    """(kind, (h, w, 3) float32 in [0, 1]): white, a flat light colour or a soft gradient."""
    kind = _background_kind(rng)
    if kind == "white":
        return kind, np.ones((h, w, 3), np.float32)
    if kind == "flat":
        return kind, np.broadcast_to(_light_colour(rng), (h, w, 3)).copy()
    c0, c1 = _light_colour(rng), _light_colour(rng)
    angle = rng.uniform(0, 2 * np.pi)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    t = x * np.float32(np.cos(angle)) + y * np.float32(np.sin(angle))
    t = (t - t.min()) / np.float32(max(float(t.max() - t.min()), 1.0))
    return kind, (c0 + (c1 - c0) * t[:, :, None]).astype(np.float32)


def _emptiness(rgb: np.ndarray) -> str | None:
    """A skip reason for an (H, W, 3) float image in [0, 1] over white, or None to keep it."""
    q = np.round(rgb * 15).astype(np.int32)  # the most common colour on a 16-level grid
    codes = (q[..., 0] * 16 + q[..., 1]) * 16 + q[..., 2]
    dominant = rgb[codes == np.bincount(codes.ravel(), minlength=4096).argmax()].mean(axis=0)
    if float((np.abs(rgb - dominant).max(axis=2) > INK_DELTA).mean()) < MIN_COVERAGE:
        return SkipReason.EMPTY
    if float(rgb.std()) < MIN_STD:
        return SkipReason.FLAT
    return None


def _render_one(rasteriser, svg: Path, size: int, min_side: int,
                rng: np.random.Generator) -> tuple[str | None, ImageData | None]:
    """(skip reason, None) or (None, float32 RGB image over its background) of one SVG."""
    from PIL import Image

    text = svg.read_bytes()
    if b"<image" in text or b":image" in text:
        return SkipReason.RASTER, None
    try:
        # dpi: resvg-py passes 0 by default, which turns mm/pt/in sizes into "invalid size"
        # (a quarter of the package's drawings); 96 is the CSS pixel, resvg's own default.
        png = rasteriser.svg_to_bytes(svg_path=str(svg), width=size, height=size, dpi=96.0)
        rgba = from_pil(Image.open(io.BytesIO(bytes(png))))
    except Exception:  # noqa: BLE001  resvg raises ValueError on bad XML; counted, not fatal
        return SkipReason.PARSE, None
    h, w = rgba.pixels.shape[:2]
    if max(h, w) != size or min(h, w) < min_side:
        return SkipReason.THIN, None
    peak = float(np.iinfo(rgba.pixels.dtype).max)
    colour = rgba.pixels.astype(np.float32) / peak  # resvg gives RGBA, straight alpha
    alpha = (np.ones((h, w), np.float32) if rgba.alpha is None
             else rgba.alpha.astype(np.float32) / peak)[:, :, None]
    reason = _emptiness(colour * alpha + (1.0 - alpha))
    if reason:
        return reason, None
    _, bg = background(h, w, rng)
    return None, ImageData(colour * alpha + bg * (1.0 - alpha))


def render_svgs(svgs: Sequence[str | os.PathLike], out_dir: str | os.PathLike, size: int = 1024,
                seed: int = 0, limit: int | None = None, min_side: int = 192, skip: int = 0,
                source: dict[str, str] | None = None, progress: bool = False) -> dict[str, Any]:
    """Render SVG files to ``out_dir/<stem>.png`` (RGB, longer side ``size``); the manifest.

    Files sharing a name (the package files a drawing under several subjects) are
    rendered once. The drawings are taken in the order of :func:`select`;
    ``limit`` takes the first drawings of that order after the first ``skip`` (a
    held-out set: ``skip`` = the training set's ``limit``). ``min_side``:
    thinner renders are skipped (a 48-pixel LR patch at x4 needs 192). ``source``
    (package, version, licence) goes into the manifest.
    Returns the manifest (also written to ``out_dir/manifest.json``: the folder's
    totals over all runs) with ``processed``, the drawings this call worked on; raises
    :class:`MissingDependency` without the rasteriser and ``ValueError`` when
    ``out_dir`` holds renders made with other settings.
    """
    rasteriser = _import_rasteriser()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings = {"size": int(size), "seed": int(seed), "min_side": int(min_side),
                "min_coverage": MIN_COVERAGE, "min_std": MIN_STD, "backgrounds": BACKGROUND_PROBS,
                "near_duplicates": f"{NEAR_DUPLICATES.pattern}: 1 in {NEAR_DUPLICATES_KEEP}"}
    if skip:
        settings["skip"] = int(skip)
    manifest_path = out / MANIFEST
    old: dict[str, Any] = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    if old and old.get("settings") != settings:
        raise ValueError(f"{out} holds renders made with {old.get('settings')}, not {settings}; "
                         "choose another folder")
    skipped: dict[str, str] = dict(old.get("skipped", {}))

    by_name: dict[str, Path] = {}
    for p in sorted(Path(s) for s in svgs):
        by_name.setdefault(p.stem, p)
    names = select(list(by_name), seed, limit, skip)

    manifest: dict[str, Any] = {
        "source": source or old.get("source", {}),
        "rasteriser": f"resvg-py {getattr(rasteriser, '__version__', '?')} "
                      f"(resvg {getattr(rasteriser, '__resvg_version__', '?')}), system fonts",
        "settings": settings}

    def save() -> None:
        """The folder's state: every PNG in it and every drawing skipped so far."""
        rendered = sorted(n for n in by_name if (out / f"{n}.png").exists())
        kinds: dict[str, int] = {}
        for n in rendered:
            k = _background_kind(_rng(n, seed))
            kinds[k] = kinds.get(k, 0) + 1
        reasons: dict[str, int] = {}
        for r in skipped.values():
            reasons[r] = reasons.get(r, 0) + 1
        manifest.update({"rendered": len(rendered), "skipped_count": len(skipped),
                         "skipped_by_reason": dict(sorted(reasons.items())),
                         "backgrounds": dict(sorted(kinds.items())),
                         "duplicate_names": len(svgs) - len(by_name),
                         "near_duplicates_left_out": len(by_name) - len(select(list(by_name), seed)),
                         "skipped": dict(sorted(skipped.items()))})
        tmp = manifest_path.with_name(f".{MANIFEST}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(manifest, indent=1) + "\n")
        os.replace(tmp, manifest_path)

    todo = [n for n in names if n not in skipped and not (out / f"{n}.png").exists()]
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(todo), unit="svg", dynamic_ncols=True, file=sys.stderr)
    new_skips = 0
    last_save = time.monotonic()
    try:
        for n in todo:
            reason, image = _render_one(rasteriser, by_name[n], size, min_side, _rng(n, seed))
            if reason:
                skipped[n] = reason
                new_skips += 1
            else:
                write_image(out / f"{n}.png", image)
            if bar is not None:
                bar.update()
                bar.set_postfix(skipped=new_skips, refresh=False)
            if time.monotonic() - last_save > 30:
                save()
                last_save = time.monotonic()
    finally:
        if bar is not None:
            bar.close()
        save()
    return dict(manifest, processed=len(todo))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m kakudai.data.art``: this module's own command line (parsed here, handed on as keywords)."""
    import argparse

    ap = argparse.ArgumentParser(
        prog="python -m kakudai.data.art",
        description="Render Debian's openclipart-svg drawings to PNG training images.")
    ap.add_argument("--limit", type=int, default=None,
                    help="consider only the first N drawings (fixed order)")
    ap.add_argument("--skip", type=int, default=0,
                    help="leave out the first N drawings of the order: with N = a training "
                         "set's --limit, a held-out set of drawings it never saw")
    ap.add_argument("--size", type=int, default=1024, help="longer side in pixels (default 1024)")
    ap.add_argument("--seed", type=int, default=0, help="order and backgrounds (default 0)")
    ap.add_argument("--min-side", type=int, default=192, help="skip thinner renders (default 192)")
    ap.add_argument("--out", default=None, help="output folder (default: CACHE/art/openclipart-SIZE)")
    args = ap.parse_args(argv)
    out = Path(args.out) if args.out else default_out_dir(args.size)
    start = time.monotonic()
    try:
        svgs = openclipart_svgs()
        m = render_svgs(svgs, out, size=args.size, seed=args.seed, limit=args.limit,
                        min_side=args.min_side, skip=args.skip, source=openclipart_source(),
                        progress=True)
    except (MissingDependency, ValueError) as e:
        print(f"kakudai.data.art: error: {e}", file=sys.stderr)
        return 2
    reasons = ", ".join(f"{k} {v}" for k, v in m["skipped_by_reason"].items()) or "none"
    took = time.monotonic() - start
    rate = f", {took / m['processed']:.2f} s per drawing" if m["processed"] else ""
    print(f"{out}: {m['rendered']} PNGs, {m['skipped_count']} drawings skipped ({reasons}); "
          f"this run: {m['processed']} drawings in {took:.0f} s{rate}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The figure of docs/real-inputs.md: one crop after a degradation, side by side.

Panels: bicubic of the degraded input, the flagship alone (``--denoise off``), the
default with automatic denoising, and the original; each with its Y-PSNR (the
``kakudai eval`` protocol, whole image). Built from ``kakudai.compare``:

    python benchmarks/real_inputs_figure.py ../shared/data/bench/Kodak24/kodim23.png \\
        --degrade noise:10 --crop 180,150,128,128 -o docs/figures/real-noise10.png
"""

from __future__ import annotations

import argparse

from kakudai.compare import compare_panels, parse_crop, render_figure
from kakudai.data.io import ImageData, write_image

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("image")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--degrade", required=True)
    ap.add_argument("--scale", type=float, default=2)
    ap.add_argument("--crop", default=None)
    ap.add_argument("--zoom", type=int, default=None)
    args = ap.parse_args()
    off = compare_panels(args.image, [("bicubic", "bicubic"), ("flagship alone", "default")], args.scale,
                         degrade=args.degrade, denoise=None)
    auto = compare_panels(args.image, [("default", "default")], args.scale, degrade=args.degrade, denoise="auto")
    panels = off[:-1] + auto[:-1] + off[-1:]
    h, w = panels[-1].image.shape[:2]
    crop = parse_crop(args.crop, h, w)
    title = f"{args.image.rsplit('/', 1)[-1]} x{args.scale:g} after {args.degrade}; PSNR: Y, whole image"
    fig = render_figure(panels, crop, zoom=args.zoom, title=title)
    write_image(args.output, ImageData(np.asarray(fig)))
    for p in panels:
        print(f"{p.label:<60} {'' if p.psnr is None else f'{p.psnr:.3f} dB'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``kakudai compare``: one crop side by side for bicubic, each model and the original
(:mod:`kakudai.compare` makes the panels and the figure)."""

from __future__ import annotations

import argparse
import sys

from .errors import error, fail

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("compare", help="side-by-side figure of one crop: bicubic, models, original")
    c.add_argument("image", metavar="IMAGE", help="an HR image (downscaled first, PSNR shown), or --lr")
    c.add_argument("-o", "--output", required=True, metavar="FIGURE.png")
    c.add_argument("--models", nargs="+", default=["default"], metavar="MODEL",
                   help="names or .safetensors files, optionally LABEL=MODEL (bicubic is always first)")
    c.add_argument("--crop", default=None, metavar="x,y,w,h", help="crop in output/HR pixels (default: centre)")
    c.add_argument("--scale", type=float, default=3)
    c.add_argument("--lr", action="store_true", help="IMAGE is a low-resolution input: no original, no PSNR")
    c.add_argument("--degrade", default=None, metavar="SPEC",
                   help="degrade the shrunk image first, as kakudai eval --degrade (e.g. jpeg:75, noise:10)")
    c.add_argument("--denoise", choices=["auto", "off"], default="auto",
                   help="auto (as kakudai upscale): degraded inputs are cleaned before each model")
    c.add_argument("--zoom", type=int, default=None, help="panel enlargement (default: panels ~256 px)")
    c.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import math
    from pathlib import Path

    import numpy as np

    from ..compare import compare_panels, parse_crop, parse_models, render_figure
    from ..data.io import ImageData, write_image

    if not args.scale > 1:
        return error(args.image, "--scale must be greater than 1")
    try:
        panels = compare_panels(args.image, parse_models(args.models), args.scale, lr=args.lr,
                                degrade=args.degrade, denoise=None if args.denoise == "off" else "auto")
        h, w = panels[-1].image.shape[:2]
        crop = parse_crop(args.crop, h, w)
    except ValueError as e:  # image and weights errors name their file themselves (main reports them)
        return fail(e, args.image)
    what = "input" if args.lr else "original"
    title = (f"{Path(args.image).name}  x{args.scale:g}" + (f" after {args.degrade}" if args.degrade else "")
             + f"  crop {crop[0]},{crop[1]},{crop[2]},{crop[3]}"
             + ("" if args.lr else f" of the {what}; PSNR: Y channel, whole image, border {math.ceil(args.scale)}"))
    fig = render_figure(panels, crop, zoom=args.zoom, title=title)
    try:
        write_image(args.output, ImageData(np.asarray(fig)))
    except ValueError as e:  # no format for the extension (an ImageWriteError names its file: main)
        return fail(e, args.output)
    for p in panels:
        score = "" if p.psnr is None else f"{p.psnr:8.3f} dB"
        print(f"{p.label:<32} {score}")
    print(f"wrote {args.output}", file=sys.stderr)
    return 0

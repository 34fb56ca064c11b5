"""``kakudai render``: one small image drawn at many sizes from one encoding, as a contact
sheet (:mod:`kakudai.render`)."""

from __future__ import annotations

import argparse

from .errors import error, fail

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("render", help="one small image drawn at many sizes from one encoding (contact sheet)")
    r.add_argument("image", metavar="IMAGE")
    r.add_argument("-o", "--output", required=True, metavar="SHEET.png")
    r.add_argument("--sizes", default="32,48,64,96,128,192,256", help="long sides in pixels, comma-separated")
    r.add_argument("--model", default="implicit", help="an arbitrary-scale model: implicit or a .safetensors file")
    r.add_argument("--from", dest="from_size", type=int, default=None, metavar="N",
                   help="first shrink the image to long side N (default: the smallest size, if larger)")
    r.add_argument("--compare", action="store_true", help="add a row of MATLAB bicubic at the same sizes")
    r.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..data.io import read_image_uint8
    from ..models.registry import arch_of
    from ..render import render_sheet
    from ..zoo import load_model

    try:
        sizes = [int(v) for v in args.sizes.split(",") if v.strip()]
    except ValueError:
        return error(args.sizes, "--sizes must be comma-separated pixel counts, e.g. 32,64,128")
    model = load_model(args.model, 2, task="upscale")  # a WeightsError names its file: main() reports it
    named = (args.model if not str(args.model).endswith(".safetensors")
             else f"{arch_of(model) or 'model'} ({Path(args.model).name})")
    try:  # an ImageReadError names its file: main() reports it
        rgb = read_image_uint8(args.image, mode="RGB")
        sheet = render_sheet(rgb, model, sizes, from_size=args.from_size, compare=args.compare,
                             name=Path(args.image).name, model_name=named)
        sheet.save(args.output)
    except ValueError as e:
        return fail(e, args.image)
    except OSError as e:
        return fail(e, args.output)
    print(f"wrote {args.output} ({len(sizes)} sizes)")
    return 0

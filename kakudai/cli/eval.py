"""``kakudai eval``: PSNR/SSIM over folders of HR images with the published-table protocols
(:mod:`kakudai.evaluation`): super-resolution, or denoising / JPEG deblocking (``--task``)."""

from __future__ import annotations

import argparse
from typing import Any, Callable

from .errors import error, fail

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("eval", help="PSNR/SSIM with the published-table protocol")
    e.add_argument("dirs", nargs="+", metavar="DIR", help="folders of HR images")
    e.add_argument("--model", default="default", help="model name or .safetensors (bicubic = baseline)")
    e.add_argument("--scale", type=float, default=3)
    e.add_argument("--tta", action="store_true", help="x8 geometric self-ensemble")
    e.add_argument("--tile", type=int, default=None, help="tile size in LR pixels (default: whole image)")
    e.add_argument("--channel", choices=["y", "rgb"], default="y")
    e.add_argument("--border", type=int, default=None, help="pixels shaved (default: ceil(scale))")
    e.add_argument("--json", action="store_true", help="last stdout line is one JSON object")
    e.add_argument("--quiet", action="store_true", help="no table")
    e.add_argument("--degrade", default=None, metavar="SPEC",
                   help="degrade the LR after the bicubic shrink, each step ending at 8 bits: "
                        "jpeg:Q, noise:SIGMA, blur:SIGMA, or a chain such as blur:0.8,noise:5,jpeg:80")
    e.add_argument("--denoise", choices=["auto", "off"], default="auto",
                   help="auto (as kakudai upscale): each image is assessed and, when degraded, "
                        "cleaned before upscaling; off: the model alone")
    e.add_argument("--task", choices=["sr", "denoise", "jpeg"], default="sr",
                   help="sr (default); denoise: Gaussian noise --sigma S, PSNR on RGB; "
                        "jpeg: Pillow JPEG at --quality Q, PSNR on Y/gray")
    e.add_argument("--sigma", type=float, default=None, help="noise std in 0-255 units (--task denoise)")
    e.add_argument("--quality", type=int, default=None, help="JPEG quality 1-100 (--task jpeg)")
    e.add_argument("--seed", type=int, default=0, help="noise seed (--task denoise)")
    e.add_argument("--clip", action="store_true",
                   help="--task denoise: clip and round the noisy input to 8 bits, as a saved file is "
                        "(the published protocol leaves it float and unclipped)")
    e.add_argument("--assume-level", type=float, default=None, metavar="L",
                   help="strength the restoration model is told (sigma or quality; default: the true one)")
    e.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return _run_sr(args) if args.task == "sr" else _run_restore(args)


def _score_dirs(dirs: list[str], run_one: Callable[[str], dict], heading: Callable[[dict], str], fields: dict,
                quiet: bool, as_json: bool) -> int:
    """Score every folder with ``run_one(dir)``, print the tables and the --json line.

    ``heading(result)`` is the table's title line; ``fields`` go into the JSON
    object before ``datasets`` (plus top-level psnr/ssim/n for a single folder).
    """
    import json

    results, failed = [], False
    for d in dirs:
        try:
            r = run_one(d)
        except (OSError, ValueError) as e:
            fail(e, d)
            failed = True
            continue
        results.append(r)
        if not quiet:
            print(heading(r))
            for row in r["images"]:
                print(f"  {row['name']:<24} {row['psnr']:8.3f} dB  {row['ssim']:.4f}")
            print(f"  {'mean':<24} {r['psnr']:8.3f} dB  {r['ssim']:.4f}")
    if as_json:
        out = dict(fields, datasets=results)
        if len(results) == 1:
            out.update(psnr=results[0]["psnr"], ssim=results[0]["ssim"], n=results[0]["n"])
        print(json.dumps(out))
    return 1 if failed else 0


def _run_restore(args: argparse.Namespace) -> int:
    """``eval --task denoise|jpeg``: the DnCNN/FFDNet/ARCNN protocols (kakudai.evaluation)."""
    from ..evaluation import evaluate_denoise, evaluate_jpeg
    from ..infer.restore import load_restorer
    from ..zoo import DEFAULT_RESTORERS

    kind = "noise" if args.task == "denoise" else "jpeg"
    if args.task == "denoise" and (args.sigma is None or args.sigma < 0):
        return error("eval", "--task denoise needs --sigma S (>= 0, 0-255 units)")
    if args.task == "jpeg" and (args.quality is None or not 1 <= args.quality <= 100):
        return error("eval", "--task jpeg needs --quality Q (1-100)")
    model = None
    if args.model != "none":
        model = load_restorer(kind, None if args.model == "default" else args.model)  # a WeightsError: main()
    shown = "none" if model is None else (DEFAULT_RESTORERS[kind] if args.model == "default" else args.model)
    what = f"sigma {args.sigma:g}" if kind == "noise" else f"quality {args.quality}"
    told = "" if args.assume_level is None or model is None else f", model told {args.assume_level:g}"
    scored = "RGB/gray, seed %d" % args.seed if kind == "noise" else "Y/gray"
    if kind == "noise" and args.clip:
        scored += ", noisy input clipped and rounded to 8 bits"

    def run_one(d: str) -> dict:
        if kind == "noise":
            return evaluate_denoise(model, d, args.sigma, seed=args.seed, assume_sigma=args.assume_level,
                                    tile=args.tile, tta=args.tta, clip=args.clip)
        return evaluate_jpeg(model, d, args.quality, tile=args.tile, tta=args.tta,
                             assume_quality=None if args.assume_level is None else int(args.assume_level))

    return _score_dirs(args.dirs, run_one,
                       lambda r: f"{r['name']}  {args.task} {what}  model={shown}  ({r['n']} images, {scored}{told})",
                       {"model": shown, "task": args.task, "sigma": args.sigma, "quality": args.quality,
                        "clip": args.clip, "assume_level": args.assume_level, "seed": args.seed, "tta": args.tta},
                       args.quiet, args.json)


def _run_sr(args: argparse.Namespace) -> int:
    import math

    from ..evaluation import evaluate_folder
    from ..zoo import ALIASES, load_model, resolve

    name = args.model
    if args.degrade:
        from ..data.pipeline import parse_spec
        try:
            parse_spec(args.degrade)
        except ValueError as e:
            return fail(e, "--degrade")
    try:
        model: Any = load_model(name, args.scale, task="upscale")  # a WeightsError: main()
    except ValueError as e:  # a scale the model cannot serve
        return fail(e, name)
    shown = resolve(name, args.scale).name if name in ALIASES else name
    served: set[str] = set()  # the models that served a folder's images (by style and cleaning)
    if args.denoise == "auto":
        # The pipeline as `kakudai upscale` runs it: each image is assessed, and cleaned
        # first when degraded (clean images go through untouched).
        model = _auto_upscaler(name, args.scale, tile=args.tile, tta=args.tta, served=served)
    border = args.border if args.border is not None else math.ceil(args.scale)
    what = (f", {args.degrade} after the shrink" if args.degrade else "") + f", denoise {args.denoise}"

    def run_one(d: str) -> dict:
        served.clear()
        r = evaluate_folder(model, d, args.scale, tile=args.tile, tta=args.tta,
                            channel=args.channel, border=args.border, degrade=args.degrade)
        return dict(r, served=sorted(served)) if served else r

    def models_of(r: dict) -> str:
        by = r.get("served", [])
        return shown if by in ([], [shown]) else f"{shown} (served by {', '.join(by)})"
    return _score_dirs(
        args.dirs, run_one,
        lambda r: (f"{r['name']}  x{args.scale:g}  model={models_of(r)}  ({r['n']} images, "
                   f"{args.channel.upper()}, border {border}{what})"),
        {"model": shown, "scale": args.scale, "tta": args.tta, "channel": args.channel,
         "degrade": args.degrade, "denoise": args.denoise},
        args.quiet, args.json)


def _auto_upscaler(name: str, scale: float, tile: int | None, tta: bool,
                   served: set[str]) -> Callable[[Any], Any]:
    """uint8 LR array -> uint8 SR array as ``kakudai upscale`` makes it by default
    (``Upscaler(name, denoise="auto", style="auto")``); the shipped name that served
    each image is added to ``served``."""
    from ..api import Upscaler

    up = Upscaler(name, tile=tile, tta=tta, denoise="auto", style="auto")

    def run(lr: Any) -> Any:
        out = up.on_array(lr, scale)
        if up.last_model:
            served.add(up.last_model)
        return out
    return run

"""The ``kakudai`` command: thin argument parsing over the Python API."""

from __future__ import annotations

import argparse
import functools
import sys

from . import __version__


def _cmd_train(args: argparse.Namespace) -> int:
    from .train.config import load_config, load_run_config
    from .train.trainer import Trainer

    try:
        if args.resume:
            cfg = load_run_config(args.resume, args.set)
            trainer = Trainer(cfg, resume=args.resume)
        else:
            trainer = Trainer(load_config(args.config, args.set))
    except (FileNotFoundError, KeyError, ValueError, TypeError) as e:  # a bad config or missing data
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        error(args.resume or args.config or "train", str(msg).splitlines()[0] if str(msg) else type(e).__name__)
        return 1
    run = trainer.fit()
    if trainer.rank == 0:
        print(f"run directory: {run}")
    return 0


def error(path: object, reason: str) -> None:
    """The one-line error format: ``kakudai: error: <path>: <reason>``."""
    print(f"kakudai: error: {path}: {reason}", file=sys.stderr)


def _eval_dirs(args: argparse.Namespace, run_one, heading, fields: dict) -> int:
    """Score every folder with ``run_one(dir)``, print the tables and the --json line.

    ``heading(result)`` is the table's title line; ``fields`` go into the JSON
    object before ``datasets`` (plus top-level psnr/ssim/n for a single folder).
    """
    import json

    results, failed = [], False
    for d in args.dirs:
        try:
            r = run_one(d)
        except (FileNotFoundError, NotADirectoryError, OSError, ValueError) as e:
            error(d, str(e))
            failed = True
            continue
        results.append(r)
        if not args.quiet:
            print(heading(r))
            for row in r["images"]:
                print(f"  {row['name']:<24} {row['psnr']:8.3f} dB  {row['ssim']:.4f}")
            print(f"  {'mean':<24} {r['psnr']:8.3f} dB  {r['ssim']:.4f}")
    if args.json:
        out = dict(fields, datasets=results)
        if len(results) == 1:
            out.update(psnr=results[0]["psnr"], ssim=results[0]["ssim"], n=results[0]["n"])
        print(json.dumps(out))
    return 1 if failed else 0


def _cmd_eval_restore(args: argparse.Namespace) -> int:
    """``eval --task denoise|jpeg``: the DnCNN/FFDNet/ARCNN protocols (kakudai.evaluation)."""

    from .checkpoint import WeightsError
    from .evaluation import evaluate_denoise, evaluate_jpeg
    from .infer.restore import load_restorer
    from .zoo import DEFAULT_RESTORERS

    kind = "noise" if args.task == "denoise" else "jpeg"
    if args.task == "denoise" and (args.sigma is None or args.sigma < 0):
        error("eval", "--task denoise needs --sigma S (>= 0, 0-255 units)")
        return 1
    if args.task == "jpeg" and (args.quality is None or not 1 <= args.quality <= 100):
        error("eval", "--task jpeg needs --quality Q (1-100)")
        return 1
    model = None
    if args.model != "none":
        try:
            model = load_restorer(kind, None if args.model == "default" else args.model)
        except WeightsError as e:
            print(f"kakudai: error: {e}", file=sys.stderr)
            return 1
    shown = "none" if model is None else (DEFAULT_RESTORERS[kind] if args.model == "default" else args.model)
    what = f"sigma {args.sigma:g}" if kind == "noise" else f"quality {args.quality}"
    told = "" if args.assume_level is None or model is None else f", model told {args.assume_level:g}"
    scored = "RGB/gray, seed %d" % args.seed if kind == "noise" else "Y/gray"
    if kind == "noise" and args.clip:
        scored += ", noisy input clipped and rounded to 8 bits"

    def run_one(d):
        if kind == "noise":
            return evaluate_denoise(model, d, args.sigma, seed=args.seed, assume_sigma=args.assume_level,
                                    tile=args.tile, tta=args.tta, clip=args.clip)
        return evaluate_jpeg(model, d, args.quality, tile=args.tile, tta=args.tta,
                             assume_quality=None if args.assume_level is None else int(args.assume_level))

    return _eval_dirs(args, run_one,
                      lambda r: f"{r['name']}  {args.task} {what}  model={shown}  ({r['n']} images, {scored}{told})",
                      {"model": shown, "task": args.task, "sigma": args.sigma, "quality": args.quality,
                       "clip": args.clip,
                       "assume_level": args.assume_level, "seed": args.seed, "tta": args.tta})


def _cmd_eval(args: argparse.Namespace) -> int:
    import math

    if getattr(args, "task", "sr") != "sr":
        return _cmd_eval_restore(args)

    from .checkpoint import WeightsError
    from .evaluation import evaluate_folder
    from .zoo import ALIASES, load_model, resolve

    name = args.model
    if args.degrade:
        from .data.pipeline import parse_spec
        try:
            parse_spec(args.degrade)
        except ValueError as e:
            error("--degrade", str(e))
            return 1
    try:
        model = load_model(name, args.scale, task="upscale")
    except WeightsError as e:
        print(f"kakudai: error: {e}", file=sys.stderr)
        return 1
    except ValueError as e:  # a scale the model cannot serve
        error(name, str(e))
        return 1
    shown = resolve(name, args.scale).name if name in ALIASES else name
    if args.denoise == "auto":
        # The pipeline as `kakudai upscale` runs it: each image is assessed, and cleaned
        # first when degraded (clean images go through untouched).
        model = _auto_upscaler(name, args)
    border = args.border if args.border is not None else math.ceil(args.scale)
    what = (f", {args.degrade} after the shrink" if args.degrade else "") + f", denoise {args.denoise}"
    return _eval_dirs(
        args,
        lambda d: evaluate_folder(model, d, args.scale, tile=args.tile, tta=args.tta,
                                  channel=args.channel, border=args.border, degrade=args.degrade),
        lambda r: (f"{r['name']}  x{args.scale:g}  model={shown}  ({r['n']} images, "
                   f"{args.channel.upper()}, border {border}{what})"),
        {"model": shown, "scale": args.scale, "tta": args.tta, "channel": args.channel,
         "degrade": args.degrade, "denoise": args.denoise})


def _auto_upscaler(name: str, args: argparse.Namespace):
    """uint8 LR array -> uint8 SR array as ``kakudai upscale`` makes it by default
    (``Upscaler(name, denoise="auto", style="auto")``)."""
    from .api import Upscaler

    up = Upscaler(name, tile=args.tile, tta=args.tta, denoise="auto", style="auto")
    return lambda lr: up.on_array(lr, args.scale)


def _cmd_upscale(args: argparse.Namespace) -> int:
    from .bench import retain_freed_memory
    from .cli_upscale import run_upscale
    retain_freed_memory()  # reuse freed feature maps instead of page-faulting new ones (docs/speed.md)
    return run_upscale(args)


def _cmd_denoise(args: argparse.Namespace) -> int:
    """``kakudai denoise``: the upscale batch driver with a Denoiser instead of an Upscaler."""
    from .bench import retain_freed_memory
    from .checkpoint import WeightsError
    from .cli_upscale import device_problem, run_upscale
    from .infer.restore import Denoiser

    retain_freed_memory()  # as upscale does (docs/speed.md)
    reason = None if args.device is None else device_problem(args.device)
    if reason:
        error(f"--device {args.device}", reason)
        return 1
    try:
        tile = args.tile if args.tile in (None, "auto") else int(args.tile)
    except ValueError:
        tile = "auto"  # run_upscale reports the bad --tile
    if args.noise_level is None and args.sigma is None and args.jpeg is None:
        args.noise_level = "auto"
    options = dict(noise_level=args.noise_level, sigma=args.sigma, jpeg=args.jpeg,
                   model=None if args.model == "default" else args.model, tile=tile or None,
                   tta=args.tta, device=args.device)
    try:
        dn = Denoiser(**options)
    except WeightsError as e:
        print(f"kakudai: error: {e}", file=sys.stderr)
        return 1
    except (RuntimeError, ValueError) as e:  # a strength out of range, an unknown --device
        error(args.device or "denoise", str(e).splitlines()[0])
        return 1
    return run_upscale(args, processor=_DenoiseStep(dn), desc="denoise", jpeg_as=".png",
                       make_processor=functools.partial(_denoise_step, options))


def _denoise_step(options: dict) -> "_DenoiseStep":
    """A fresh denoise step (each ``--executor ray`` worker builds its own)."""
    from .infer.restore import Denoiser

    return _DenoiseStep(Denoiser(**options))


class _DenoiseStep:
    """A Denoiser as the batch driver calls a processor (size arguments unused)."""

    def __init__(self, dn):
        self.dn = dn

    def __call__(self, data, *_size, on_tile=None):
        return self.dn(data, on_tile=on_tile)

    def report(self) -> str | None:
        """What --verbose prints for the last image (automatic strength only)."""
        if not self.dn.auto or self.dn.last_assessment is None:
            return None
        return f"{self.dn.last_assessment.describe()} -> {self.dn.description}"


def _cmd_compare(args: argparse.Namespace) -> int:
    from .compare import run_compare
    return run_compare(args)


def _cmd_serve(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        error(f"--port {args.port}", "not a TCP port number (0-65535; 0 picks a free one)")
        return 1
    try:
        from .web.server import WebConfig, serve
    except ImportError as e:
        error("serve", f"the web page needs the web extra: pip install 'kakudai[web]' ({e.name} is missing)")
        return 1
    limits = {"max_upload_bytes": None if args.max_upload_mb is None else int(args.max_upload_mb * 2**20),
              "max_pixels": args.max_pixels}
    cfg = WebConfig(**{k: v for k, v in limits.items() if v is not None})
    try:
        serve(args.host, args.port, cfg)
    except OSError as e:
        error(f"{args.host}:{args.port}", e.strerror or str(e))
        return 1
    return 0


def _parse_hw(text: str) -> tuple[int, int]:
    h, _, w = text.lower().partition("x")
    return int(h), int(w or h)


def _cmd_models(args: argparse.Namespace) -> int:
    import json

    from .checkpoint import WeightsError, load_weights_file
    from .registry import create_model, list_models
    from .summary import format_layer_table, format_overview, models_overview
    from .zoo import ZOO, load_model

    if args.name is None:
        records = models_overview()
        if args.json:
            print(json.dumps(records))
        else:
            print(format_overview(records))
        return 0
    try:
        hw = _parse_hw(args.input)
    except ValueError:
        error(args.input, "expected --input HxW, e.g. 64x64")
        return 1
    s = args.scale
    shipped = ZOO.get(args.name)
    try:
        if args.name.endswith(".safetensors"):
            model = load_weights_file(args.name)
        elif shipped is not None and shipped.present():  # as shipped, at the scale asked or its first
            at = s if s is not None or not shipped.scales else shipped.present_scales()[0]
            model = load_model(args.name, at)
        elif args.name not in list_models():
            error(args.name, f"unknown model; known: {', '.join(list_models())}")
            return 1
        else:
            model = create_model(args.name, **({} if s is None else {"scale": int(s) if s.is_integer() else s}))
    except WeightsError as e:
        print(f"kakudai: error: {e}", file=sys.stderr)
        return 1
    except (TypeError, ValueError) as e:
        error(args.name, f"cannot build it at x{s:g} ({e})" if s is not None else str(e))
        return 1
    scales = getattr(model, "scales", None) or (getattr(model, "scale", 1),)
    scale = s if s is not None else scales[0]
    print(format_layer_table(model, float(scale), hw, title=f"{args.name} x{float(scale):g}"))
    return 0


def _parse_wh(text: str) -> tuple[int, int]:
    """'640x360' -> (640, 360): width x height."""
    w, _, h = text.lower().partition("x")
    wh = int(w), int(h or w)
    if min(wh) < 1:
        raise ValueError(text)
    return wh


def _cmd_bench(args: argparse.Namespace) -> int:
    import json

    from .bench import (DEFAULT_MODELS, format_footer, format_header, format_row, format_row_header,
                        retain_freed_memory, run_bench)
    from .checkpoint import WeightsError
    from .infer.export import ExportError

    if args.malloc == "retain":
        retain_freed_memory()

    try:
        size = _parse_wh(args.size)
    except ValueError:
        error(args.size, "expected --size WxH, e.g. 640x360")
        return 1
    if args.repeat < 1:
        error("bench", "--repeat must be at least 1")
        return 1

    def header(rep: dict) -> None:
        print(format_header(rep), "", format_row_header(), sep="\n", flush=True)

    def row(r) -> None:
        print(format_row(r), flush=True)

    try:
        report = run_bench(args.model or DEFAULT_MODELS, scale=args.scale, size=size,
                           repeat=args.repeat, warmup=args.warmup, backend=args.backend,
                           precision=args.precision, memory_format=args.memory_format,
                           compile=args.compile, tta=args.tta, threads=args.threads,
                           peak_size=args.peak, on_peak=None if args.json else header,
                           on_result=None if args.json else row)
    except (WeightsError, ExportError) as e:
        print(f"kakudai: error: {e}", file=sys.stderr)
        return 1
    except (KeyError, ValueError) as e:  # unknown model name, a scale the model cannot serve
        error("bench", str(e).strip("'\""))
        return 1
    if args.json:
        print(json.dumps(report))
    else:
        print("", format_footer(report), sep="\n")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .bench import load_for_bench
    from .checkpoint import WeightsError
    from .infer.export import ExportError, export_onnx

    if not args.onnx:
        error("export", "give --onnx OUT.onnx")
        return 1
    try:
        model, weights = load_for_bench(args.model, args.scale)
        if weights.startswith("random"):
            if not args.allow_random:
                error(args.model, f"no shipped weights at x{args.scale:g}; pass a .safetensors file "
                                  "(or --allow-random to export untrained weights)")
                return 1
        out = export_onnx(model, args.onnx, args.scale, opset=args.opset)
    except WeightsError as e:
        print(f"kakudai: error: {e}", file=sys.stderr)
        return 1
    except ExportError as e:
        error(args.model, str(e))
        return 1
    except (KeyError, ValueError, OSError) as e:
        error(args.onnx, str(e).strip("'\""))
        return 1
    print(f"wrote {out} ({getattr(model, 'arch', args.model)} x{args.scale:g}, weights: {weights}, "
          f"input x: (N, {getattr(model, 'channels', 3)}, H, W) float32, dynamic N/H/W)")
    return 0


def _cmd_render(args: argparse.Namespace) -> int:
    from .checkpoint import WeightsError
    from .data.io import ImageReadError, read_image_uint8
    from .render import render_sheet
    from .zoo import load_model

    try:
        sizes = [int(v) for v in args.sizes.split(",") if v.strip()]
    except ValueError:
        error(args.sizes, "--sizes must be comma-separated pixel counts, e.g. 32,64,128")
        return 1
    try:
        model = load_model(args.model, 2, task="upscale")
    except WeightsError as e:
        print(f"kakudai: error: {e}", file=sys.stderr)
        return 1
    try:
        rgb = read_image_uint8(args.image, mode="RGB")
        from pathlib import Path
        sheet = render_sheet(rgb, model, sizes, from_size=args.from_size, compare=args.compare,
                             name=Path(args.image).name,
                             model_name=args.model if not str(args.model).endswith(".safetensors")
                             else f"{getattr(model, 'arch', 'model')} ({Path(args.model).name})")
        sheet.save(args.output)
    except ImageReadError as e:
        error(e.path, e.reason)
        return 1
    except ValueError as e:
        error(args.image, str(e))
        return 1
    except OSError as e:
        error(args.output, e.strerror or str(e))
        return 1
    print(f"wrote {args.output} ({len(sizes)} sizes)")
    return 0


def _noise_level_arg(text: str) -> "int | str":
    t = text.strip().lower()
    if t == "auto":
        return t
    if t in ("0", "1", "2", "3"):
        return int(t)
    raise argparse.ArgumentTypeError(f"expected auto or 0-3, not {text!r}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kakudai", description="Deep-learning image super-resolution on a CPU.")
    p.add_argument("--version", action="version", version=f"kakudai {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

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
    e.set_defaults(func=_cmd_eval)

    from .cli_upscale import add_arguments as _upscale_arguments
    u = sub.add_parser("upscale", help="upscale images (files, folders, glob patterns)")
    _upscale_arguments(u)
    u.set_defaults(func=_cmd_upscale)

    dn = sub.add_parser("denoise", help="remove noise or JPEG artifacts (same size out)",
                        description="Remove JPEG artifacts (--noise-level, --jpeg) or Gaussian noise "
                                    "(--sigma). Cleaned JPEG inputs are written as PNG (same stem) "
                                    "unless --format asks otherwise.")
    strength = dn.add_mutually_exclusive_group()
    strength.add_argument("--noise-level", type=_noise_level_arg, default=None, metavar="auto|0-3",
                          help="auto (the default): estimate each image's noise level and JPEG quality "
                               "and clean it accordingly; 0-3: JPEG cleanup as in waifu2x: 0 = light "
                               "(quality 85+), 1 = medium (65+), 2 = strong (40+), 3 = strongest (20+)")
    strength.add_argument("--sigma", type=float, default=None, metavar="S",
                          help="Gaussian noise of std S in 0-255 units (0-55)")
    strength.add_argument("--jpeg", type=int, nargs="?", const=True, default=None, metavar="Q",
                          help="JPEG artifacts: the quality Q the image was saved at, or blind without Q")
    dn.add_argument("-v", "--verbose", action="store_true",
                    help="print what --noise-level auto read from each image and the strength it chose")
    _upscale_arguments(dn, same_size=True)
    dn.set_defaults(func=_cmd_denoise)

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
    c.set_defaults(func=_cmd_compare)

    w = sub.add_parser("serve", help="a local web page: drop an image, compare, download")
    w.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this computer only)")
    w.add_argument("--port", type=int, default=8000)
    w.add_argument("--max-upload-mb", type=float, default=None, help="largest accepted upload in MiB (default 32)")
    w.add_argument("--max-pixels", type=int, default=None,
                   help="largest accepted input, width*height (default 16000000)")
    w.set_defaults(func=_cmd_serve)

    t = sub.add_parser("train", help="train a model from a TOML config")
    t.add_argument("config", nargs="?", help="TOML config (configs/*.toml)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set optim.lr=1e-3 (repeatable)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    t.set_defaults(func=_cmd_train)

    m = sub.add_parser("models", help="list models (parameters, multiply-adds, weights) or one model's layers")
    m.add_argument("name", nargs="?", metavar="NAME", help="a model name or .safetensors file: print its layer table")
    m.add_argument("--scale", type=float, default=None, help="scale for the layer table (default: the model's)")
    m.add_argument("--input", default="64x64", metavar="HxW", help="input (low-resolution) size for the layer table")
    m.add_argument("--json", action="store_true", help="the model list as one JSON line")
    m.set_defaults(func=_cmd_models)

    b = sub.add_parser("bench", help="time whole upscale calls; GFLOP/s against the measured peak")
    b.add_argument("--model", nargs="+", default=None, metavar="NAME",
                   help="model names or .safetensors files (default: bicubic ksr ksr-fast); "
                        "architectures without shipped weights run with random weights")
    b.add_argument("--scale", type=float, default=3)
    b.add_argument("--size", default="640x360", metavar="WxH", help="input frame size (default 640x360)")
    b.add_argument("--repeat", type=int, default=5, help="timed runs per model (default 5)")
    b.add_argument("--warmup", type=int, default=2, help="untimed runs first (default 2)")
    b.add_argument("--backend", choices=["torch", "onnxruntime"], default="torch")
    b.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="bf16: convolutions under CPU bf16 autocast (torch backend)")
    b.add_argument("--memory-format", choices=["channels_last", "contiguous"], default="channels_last",
                   help="layout of the convolution weights (default channels_last, as loaded models)")
    b.add_argument("--threads", type=int, default=None, help="intra-op threads (default: torch's)")
    b.add_argument("--compile", action="store_true", help="torch.compile the network (slow first call)")
    b.add_argument("--tta", action="store_true", help="x8 self-ensemble")
    b.add_argument("--peak", choices=["full", "quick"], default="full",
                   help="size of the peak measurement (quick: small, for tests)")
    b.add_argument("--malloc", choices=["retain", "default"], default="retain",
                   help="retain: glibc keeps freed memory for reuse (as `kakudai upscale`); default: as is")
    b.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    b.set_defaults(func=_cmd_bench)

    x = sub.add_parser("export", help="export a model's network to ONNX (dynamic height/width)")
    x.add_argument("model", metavar="MODEL", help="a shipped model name or .safetensors file")
    x.add_argument("--scale", type=float, default=3)
    x.add_argument("--onnx", required=True, metavar="OUT.onnx")
    x.add_argument("--opset", type=int, default=18)
    x.add_argument("--allow-random", action="store_true",
                   help="export an architecture with random weights when none are shipped (tests, timing)")
    x.set_defaults(func=_cmd_export)

    r = sub.add_parser("render", help="one small image drawn at many sizes from one encoding (contact sheet)")
    r.add_argument("image", metavar="IMAGE")
    r.add_argument("-o", "--output", required=True, metavar="SHEET.png")
    r.add_argument("--sizes", default="32,48,64,96,128,192,256", help="long sides in pixels, comma-separated")
    r.add_argument("--model", default="implicit", help="an arbitrary-scale model: implicit or a .safetensors file")
    r.add_argument("--from", dest="from_size", type=int, default=None, metavar="N",
                   help="first shrink the image to long side N (default: the smallest size, if larger)")
    r.add_argument("--compare", action="store_true", help="add a row of MATLAB bicubic at the same sizes")
    r.set_defaults(func=_cmd_render)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

"""``kakudai upscale``: images, folders, glob patterns and videos through :class:`kakudai.api.Upscaler`.

The options here are shared with ``kakudai denoise`` (:func:`add_arguments` with
``same_size``); :func:`batch_options` turns either command's arguments into the typed
:class:`~kakudai.cli.batch.BatchOptions` the batch driver runs.
"""

from __future__ import annotations

import argparse

# Only light modules here: --help and argument parsing must not load Pillow, numpy or torch.
from ..data.formats import DEFAULT_MAX_PIXELS
from ..infer.styles import STYLES
from ..infer.distributed import ClusterOptions
from .batch import OUTPUT_FORMATS, BatchOptions, run_batch
from .jobs import JobOptions, VideoOptions

__all__ = ["add_parser", "add_arguments", "batch_options", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    u = sub.add_parser("upscale", help="upscale images (files, folders, glob patterns)")
    add_arguments(u)
    u.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..bench import retain_freed_memory

    retain_freed_memory()  # reuse freed feature maps instead of page-faulting new ones (docs/speed.md)
    return run_batch(batch_options(args))


def batch_options(args: argparse.Namespace) -> BatchOptions:
    """The typed options of an ``upscale`` or ``denoise`` command line."""
    video = VideoOptions(crf=args.crf, preset=args.preset, codec=args.codec, pix_fmt=args.pix_fmt,
                         frames=args.frames, batch=args.batch)
    job = JobOptions(model=args.model, overwrite=args.overwrite, max_pixels=args.max_pixels, quality=args.quality,
                     verbose=args.verbose, tta=args.tta, denoise=args.denoise, video=video)
    cluster = ClusterOptions(executor=args.executor, address=args.address, workers=args.workers,
                             threads_per_worker=args.threads_per_worker)
    return BatchOptions(inputs=tuple(args.inputs), output=args.output, recursive=args.recursive, suffix=args.suffix,
                        format=args.format, scale=args.scale, width=args.width, height=args.height, size=args.size,
                        tile=args.tile, threads=args.threads, device=args.device, alpha=args.alpha, style=args.style,
                        backend=args.backend, precision=args.precision, job=job, cluster=cluster)


def _denoise_arg(text: str) -> "int | str | None":
    """``--denoise``: auto, off, or a level 0-3."""
    t = text.strip().lower()
    if t in ("auto", "off"):
        return None if t == "off" else "auto"
    if t in ("0", "1", "2", "3"):
        return int(t)
    raise argparse.ArgumentTypeError(f"expected auto, off or 0-3, not {text!r}")


def add_arguments(u: argparse.ArgumentParser, same_size: bool = False) -> None:
    """The ``upscale`` options, added to the sub-parser ``u``.

    ``same_size``: the input/output options only, for commands whose output
    has the input's size (``kakudai denoise``): no size, alpha, denoise, style,
    backend or video options (their values are fixed, so :func:`batch_options`
    reads the same fields from either command).
    """
    u.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    u.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="output folder (created if its parent exists), or a file for one input")
    if same_size:
        u.set_defaults(scale=None, width=None, height=None, size=None, alpha="model", denoise=None, style="photo",
                       backend="torch", precision="fp32", crf=None, preset=None, codec=None, pix_fmt=None,
                       frames=None, batch=None)
    else:
        size = u.add_argument_group("size (default: --scale 2)")
        size.add_argument("--scale", type=float, default=None, help="enlargement factor (default 2)")
        size.add_argument("--width", type=int, default=None, help="output width in pixels (scale derived)")
        size.add_argument("--height", type=int, default=None, help="output height in pixels (scale derived)")
        size.add_argument("--size", default=None, metavar="WxH", help="fit inside WxH, keeping the aspect ratio")
        u.add_argument("--denoise", type=_denoise_arg, default="auto", metavar="auto|off|0-3",
                       help="auto (default): read each image's JPEG quality and noise level and send "
                            "degraded images to the model trained on real inputs; 0-3: remove JPEG "
                            "noise first at waifu2x's levels (0 = light ... 3 = strong); off: neither")
        u.add_argument("--style", choices=["auto", *STYLES], default="auto",
                       help="auto (default): drawings (flat colour, line art) go to the illustration "
                            "model, gray ones (manga pages, ink drawings) to the manga model, at the "
                            "scales they ship, photos to the photo model; or decide it")
        u.add_argument("-v", "--verbose", action="store_true",
                       help="print what --denoise auto read from each image and the model it chose")
    u.add_argument("--model", default="default", help="model name or .safetensors file (default: default)")
    u.add_argument("--tile", default="auto", metavar="auto|N",
                   help="core tile side in input pixels; auto fits a ~1 GB budget; 0 = whole image")
    u.add_argument("--tta", action="store_true", help="x8 geometric self-ensemble (8x slower)")
    if not same_size:
        u.add_argument("--alpha", choices=["model", "bicubic"], default="model",
                       help="how to upscale transparency (default: model)")
    u.add_argument("-r", "--recursive", action="store_true", help="descend into sub-folders (structure kept)")
    u.add_argument("--suffix", default="", help="added to each output's stem, e.g. _x2")
    u.add_argument("--format", choices=sorted(OUTPUT_FORMATS), default=None,
                   help="output format (default: the input's)")
    u.add_argument("--quality", type=int, default=None, help="JPEG/WebP quality 1-100 (default 95)")
    u.add_argument("--overwrite", action="store_true", help="replace existing outputs (never inputs)")
    u.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda (default: cpu)")
    u.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    if not same_size:
        u.add_argument("--backend", choices=["torch", "onnxruntime"], default="torch",
                       help="run the network on torch or on onnxruntime (exported once, cached; "
                            "needs the onnx extra)")
        u.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                       help="bf16: convolutions in bfloat16 on CPUs that support it (torch backend)")
    u.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help=f"refuse images with more pixels (decompression-bomb guard; default {DEFAULT_MAX_PIXELS})")
    c = u.add_argument_group('cluster (needs pip install "kakudai[ray]"; see docs/ray.md)')
    c.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="local (default): this process; ray: one file per task on a Ray cluster's workers")
    c.add_argument("--address", default=None,
                   help="Ray cluster to join, e.g. auto or HEAD:6379 (default: RAY_ADDRESS, else a local Ray)")
    c.add_argument("--workers", type=int, default=None,
                   help="Ray workers, each holding the model once (default: cluster CPUs / threads per worker)")
    c.add_argument("--threads-per-worker", type=int, default=None, metavar="T",
                   help="torch threads in each Ray worker, and the CPUs it reserves (default 1)")
    if same_size:
        return
    v = u.add_argument_group("video (audio, subtitles, timestamps, rotation and colour tags are kept)")
    v.add_argument("--crf", type=float, default=None, help="encoder quality, lower = better (default 18)")
    v.add_argument("--preset", default=None, help="encoder speed preset, e.g. veryfast, medium, slow (default medium)")
    v.add_argument("--codec", default=None, help="video encoder (default libx264; libvpx-vp9 for .webm)")
    v.add_argument("--pix-fmt", default=None, help="output pixel format (default yuv420p)")
    v.add_argument("--frames", default=None, metavar="A:B",
                   help="only a range: frames 100:200 (B excluded), seconds 5s:8s, or times 00:00:05-00:00:08")
    v.add_argument("--batch", type=int, default=None, help="frames upscaled together (default 4)")

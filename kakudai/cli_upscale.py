"""``kakudai upscale``: the batch driver over :class:`kakudai.api.Upscaler`.

Inputs are files, folders (``-r``: recursive, sub-folders kept) and glob
patterns. Output names follow the foundation contract: in an output folder
each result keeps its input's relative path, stem and extension (``--suffix``
and ``--format`` change them); a single input file with an image-extension
``-o`` is written to exactly that file.

Guarantees: an input file is never written over; every output goes to a
temporary file beside it and is renamed when complete (SIGINT/SIGTERM remove
it); one bad file gives one line ``kakudai: error: <path>: <reason>`` and the
batch goes on; a summary (done / skipped / failed) ends the run; the exit
code is 0 only when nothing failed.

Video files (:data:`kakudai.data.io.VIDEO_EXTENSIONS`) are dispatched to
``kakudai.infer.video.upscale_video`` when that module exists (see
:func:`kakudai.cli_jobs._run_video`).
"""

from __future__ import annotations

import argparse
import functools
import glob
import os
import signal
import sys
import time
from pathlib import Path
from typing import Callable

# Only the light constants here: --help and argument parsing must not load Pillow, numpy or torch.
from .cli_jobs import (Job, Terminated, _run_job, _say, _sigterm_raises, _video_backend, _weights_message, error,
                       summary_line)
from .data.formats import DEFAULT_MAX_PIXELS, FORMAT_EXTENSIONS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

__all__ = ["run_upscale", "plan_outputs", "OUTPUT_FORMATS", "Job"]

OUTPUT_FORMATS = {"png": ".png", "jpg": ".jpg", "webp": ".webp", "tiff": ".tiff"}
_GLOB_CHARS = set("*?[")


# --------------------------------------------------------------------------- inputs
def _wanted(p: Path, with_video: bool) -> bool:
    ext = p.suffix.lower()
    return ext in IMAGE_EXTENSIONS or (with_video and ext in VIDEO_EXTENSIONS)


def _hidden(rel: Path) -> bool:
    return any(part.startswith(".") for part in rel.parts)


def expand_inputs(inputs: list[str], recursive: bool, exclude: Path | None = None,
                  with_video: bool = False) -> tuple[list[tuple[Path, Path]], list[tuple[str, str]]]:
    """(file, output-relative path) for every input, and (input, reason) for bad inputs.

    A file is taken as given (any extension: a wrong one is reported when it is
    read). A folder gives its image files (``recursive``: all levels, relative
    paths kept), skipping hidden files and anything under ``exclude`` (the
    output folder). A glob pattern gives its matches, relative to the
    pattern's fixed leading folders.
    """
    found: list[tuple[Path, Path]] = []
    bad: list[tuple[str, str]] = []
    excl = exclude.resolve() if exclude is not None else None

    def excluded(f: Path) -> bool:
        return excl is not None and (f.resolve() == excl or excl in f.resolve().parents)

    for s in inputs:
        p = Path(s)
        if p.is_file():
            found.append((p, Path(p.name)))
        elif p.is_dir():
            files = sorted(p.rglob("*") if recursive else p.iterdir())
            n = 0
            for f in files:
                rel = f.relative_to(p)
                if f.is_file() and _wanted(f, with_video) and not _hidden(rel) and not excluded(f):
                    found.append((f, rel))
                    n += 1
            if n == 0:
                bad.append((s, "no image files in this folder" + ("" if recursive else " (use -r for sub-folders)")))
        elif _GLOB_CHARS & set(s):
            base_parts = []
            for part in Path(s).parts:
                if _GLOB_CHARS & set(part):
                    break
                base_parts.append(part)
            base = Path(*base_parts) if base_parts else Path(".")
            matches = [Path(m) for m in sorted(glob.glob(s, recursive=True))]
            matches = [m for m in matches if m.is_file() and _wanted(m, with_video) and not excluded(m)]
            if not matches:
                bad.append((s, "no image files match this pattern"))
            for m in matches:
                try:
                    rel = m.relative_to(base)
                except ValueError:
                    rel = Path(m.name)
                found.append((m, rel))
        else:
            bad.append((s, "no such file or folder"))
    return found, bad


def plan_outputs(items: list[tuple[Path, Path]], out: Path, single_file: bool, suffix: str = "",
                 fmt: str | None = None, with_video: bool = False,
                 jpeg_as: str | None = None) -> list[Job]:
    """The output path of every input; inputs that would be overwritten, or two inputs
    that would write the same output, get a ``problem`` instead of running.
    ``jpeg_as`` (e.g. ".png"): the extension JPEG inputs get when there is no ``fmt``."""
    inputs = {src.resolve() for src, _ in items}
    jobs: list[Job] = []
    taken: dict[Path, Path] = {}
    for src, rel in items:
        video = with_video and src.suffix.lower() in VIDEO_EXTENSIONS
        if single_file:
            dst = out
        else:
            ext = rel.suffix if (video or fmt is None) else OUTPUT_FORMATS[fmt]
            if fmt is None and jpeg_as and ext.lower() in (".jpg", ".jpeg"):
                ext = jpeg_as
            dst = out / rel.parent / f"{rel.stem}{suffix}{ext}"
        job = Job(src, dst, video)
        key = dst.resolve()
        if key in inputs:
            job.problem = f"the output {dst} is an input file; refusing to overwrite it (use another -o or --suffix)"
        elif key in taken:
            job.problem = f"the output {dst} would also be written for {taken[key]}; rename one of them"
        else:
            taken[key] = src
        jobs.append(job)
    return jobs


# --------------------------------------------------------------------------- signals
# --------------------------------------------------------------------------- options
def _size_options(args: argparse.Namespace) -> tuple[float | None, int | None, int | None]:
    """(scale, width, height) from --scale / --width / --height / --size."""
    width, height = args.width, args.height
    if args.size:
        if width is not None or height is not None:
            raise ValueError("--size cannot be combined with --width/--height")
        try:
            w, h = args.size.lower().split("x")
            width, height = int(w), int(h)
        except ValueError:
            raise ValueError(f"--size must look like 1920x1080, not {args.size!r}") from None
    for v in (width, height):
        if v is not None and v < 1:
            raise ValueError("--width/--height must be positive")
    if width is not None or height is not None:
        if args.scale is not None:
            raise ValueError("--scale cannot be combined with --width/--height/--size")
        return None, width, height
    scale = 2.0 if args.scale is None else float(args.scale)
    if not scale > 0:
        raise ValueError("--scale must be positive")
    return scale, None, None


def device_problem(name: str) -> str | None:
    """Why ``--device name`` cannot run kakudai's networks, in one line (None: it can)."""
    import torch

    usable = "cpu, cuda, cuda:N, mps or xpu"
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        return f"not a torch device (expected {usable})"
    if dev.type == "cpu":
        return None
    if dev.type == "cuda":
        if not torch.backends.cuda.is_built():
            return "this torch build has no CUDA support (it is CPU-only); use --device cpu"
        if not torch.cuda.is_available():
            return "no CUDA GPU is available (driver or device missing); use --device cpu"
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            return f"there is no CUDA device {dev.index} ({torch.cuda.device_count()} found)"
        return None
    if dev.type == "mps":
        return None if torch.backends.mps.is_available() else "MPS is not available here; use --device cpu"
    if dev.type == "xpu":
        xpu = getattr(torch, "xpu", None)
        return None if xpu is not None and xpu.is_available() else "no XPU is available here; use --device cpu"
    return f"kakudai cannot run on {dev.type} devices (expected {usable})"


# --------------------------------------------------------------------------- the run
def run_upscale(args: argparse.Namespace, processor: Callable[..., object] | None = None,
                desc: str = "upscale", jpeg_as: str | None = None,
                make_processor: Callable[[], object] | None = None) -> int:
    """The ``kakudai upscale`` command. Returns the exit code.

    Hooks for other same-driver commands (``kakudai denoise``): ``processor``
    replaces the Upscaler (called as ``processor(data, scale, width, height,
    on_tile=...)`` -> ImageData; no video), ``desc`` labels the progress bar,
    ``jpeg_as`` is the extension JPEG inputs get without --format,
    ``make_processor`` builds an equivalent processor in each ``--executor ray`` worker.
    """
    from PIL import Image
    from tqdm import tqdm

    from .api import Upscaler
    from .checkpoint import WeightsError

    try:
        scale, width, height = _size_options(args)
        if args.quality is not None and not 1 <= args.quality <= 100:
            raise ValueError("--quality must be between 1 and 100")
        if args.threads is not None and args.threads < 1:
            raise ValueError("--threads must be at least 1")
        reason = None if args.device is None else device_problem(args.device)
        if reason:
            raise ValueError(f"--device {args.device}: {reason}")
        tile: int | str | None = args.tile
        if tile not in (None, "auto"):
            tile = int(tile)  # type: ignore[arg-type]
            if tile < 0:
                raise ValueError("--tile must be auto or a positive number of pixels")
        if hasattr(args, "executor"):  # the cluster options (kakudai.infer.distributed imports no Ray)
            from .infer.distributed import options_problem

            reason = options_problem(args)
            if reason:
                raise ValueError(reason)
    except ValueError as e:
        msg = str(e)
        if msg.startswith("invalid literal"):
            msg = f"--tile must be auto or a number of pixels, not {args.tile!r}"
        _say(f"kakudai: error: {msg}")
        return 1
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    video_fn = _video_backend() if processor is None else None
    out = Path(args.output)
    single_input = len(args.inputs) == 1 and Path(args.inputs[0]).is_file()
    out_ext = out.suffix.lower()
    single_file = single_input and not out.is_dir() and (
        out_ext in FORMAT_EXTENSIONS or (video_fn is not None and out_ext in VIDEO_EXTENSIONS))
    if single_input and out_ext and not single_file and not out.is_dir():
        # A new folder named like a file is far more often a typo'd or unsupported file name.
        kinds = "an image or video" if video_fn is not None else "an image"
        error(out, f"{out.suffix} is not {kinds} file extension (a new output folder takes a name without one)")
        return 1
    fmt = args.format
    if single_file and fmt and FORMAT_EXTENSIONS.get(OUTPUT_FORMATS[fmt]) != FORMAT_EXTENSIONS.get(out_ext):
        error(out, f"--format {fmt} does not match the file extension {out.suffix}")
        return 1
    items, bad = expand_inputs(args.inputs, args.recursive, exclude=None if single_file else out,
                               with_video=video_fn is not None)
    if items and not _prepare_output(out, single_file):
        return 1
    for s, reason in bad:
        error(s, reason)
    if not items:  # nothing to do: no output folder is created either
        return 1
    jobs = plan_outputs(items, out, single_file, args.suffix, fmt, with_video=video_fn is not None,
                        jpeg_as=jpeg_as)

    try:
        if processor is not None:
            up = processor
        else:
            make_processor = functools.partial(
                Upscaler, args.model, tile=tile, tta=args.tta, alpha=args.alpha, device=args.device,
                denoise=getattr(args, "denoise", None), style=getattr(args, "style", "photo"),
                backend=getattr(args, "backend", "torch"), precision=getattr(args, "precision", "fp32"))
            up = make_processor()
            up.native_scales()
        if processor is None and scale is not None and jobs:
            up.model_for(up.plan(64, 64, scale)[0])  # load now: a bad weights file fails once, early
    except WeightsError as e:
        _say(f"kakudai: error: {_weights_message(args.model, e)}")
        return 1
    except (RuntimeError, ValueError) as e:  # e.g. an unknown --device
        error(args.device or args.model, str(e).splitlines()[0])
        return 1

    if getattr(args, "executor", "local") == "ray":
        from .infer.distributed import run_on_ray

        if make_processor is None:
            raise ValueError("--executor ray needs make_processor for a custom processor")

        return run_on_ray(args, jobs, make_processor, (scale, width, height), len(bad), desc,
                          with_video=video_fn is not None)

    # Load every Pillow format plugin now: Pillow otherwise imports them lazily at the
    # first save, and a Ctrl-C landing inside an import is mangled by Python (wrapped
    # in a RuntimeError, or an exit by SIGINT after we handled it and printed the summary).
    Image.init()
    done = skipped = 0
    failed = len(bad)
    t0 = time.perf_counter()
    bar = tqdm(total=len(jobs), unit="img", desc=desc, file=sys.stderr, disable=None, dynamic_ncols=True)
    interrupted: BaseException | None = None
    try:
        with _sigterm_raises():
            for job in jobs:
                bar.set_postfix_str(job.src.name, refresh=False)
                status = _run_job(job, up, scale, width, height, args, video_fn)
                if status == "abort":
                    return 1
                done += status == "done"
                skipped += status == "skipped"
                failed += status == "failed"
                bar.update(1)
    except (KeyboardInterrupt, Terminated) as e:
        interrupted = e
    finally:
        bar.close()
        note = "interrupted; no partial output left" if interrupted is not None else None
        _say(summary_line(done, skipped, failed, time.perf_counter() - t0, note))
    if interrupted is not None:
        return 128 + (interrupted.signum if isinstance(interrupted, Terminated) else signal.SIGINT)
    return 1 if failed else 0


def _prepare_output(out: Path, single_file: bool) -> bool:
    """Check (and for a folder output, create) where outputs go; one error line if not possible."""
    folder = (out.parent if str(out.parent) else Path(".")) if single_file else out
    if not single_file:
        if out.exists() and not out.is_dir():
            error(out, "output is an existing file, not a folder (give a folder, or one input file)")
            return False
        if not out.exists():
            parent = out.parent if str(out.parent) else Path(".")
            if not parent.is_dir():
                error(out, f"cannot create the output folder: {parent} does not exist")
                return False
            try:
                out.mkdir()
            except OSError as e:
                error(out, f"cannot create the output folder ({e.strerror or e})")
                return False
    if not folder.is_dir():
        error(folder, "output folder does not exist")
        return False
    if not os.access(folder, os.W_OK | os.X_OK):
        error(folder, "output folder is not writable")
        return False
    return True


def _denoise_arg(text: str) -> "int | str | None":
    """``--denoise``: auto, off, or a level 0-3."""
    t = text.strip().lower()
    if t in ("auto", "off"):
        return None if t == "off" else "auto"
    if t in ("0", "1", "2", "3"):
        return int(t)
    raise argparse.ArgumentTypeError(f"expected auto, off or 0-3, not {text!r}")


def add_arguments(u: argparse.ArgumentParser, same_size: bool = False) -> None:
    """The ``upscale`` options (cli.py builds the sub-parser and calls this).

    ``same_size``: the input/output options only, for commands whose output
    has the input's size (``kakudai denoise``): no size, alpha, denoise or video options.
    """
    u.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    u.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="output folder (created if its parent exists), or a file for one input")
    if same_size:
        u.set_defaults(scale=None, width=None, height=None, size=None, alpha="model", denoise=None)
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
        u.add_argument("--style", choices=["auto", "photo", "illustration"], default="auto",
                       help="auto (default): drawings (flat colour, line art) go to the illustration "
                            "model at the scales it ships, photos to the photo model; or decide it")
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

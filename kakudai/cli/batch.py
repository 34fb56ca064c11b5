"""The batch driver of ``kakudai upscale`` and ``kakudai denoise``.

Inputs are files, folders (``recursive``: sub-folders, kept in the output) and
glob patterns. Output names: in an output folder each result keeps its
input's relative path, stem and extension (``suffix`` and ``format`` change
them); a single input file with an image-extension output is written to
exactly that file.

Guarantees: an input file is never written over; every output goes to a
temporary file beside it and is renamed when complete (SIGINT/SIGTERM remove
it); one bad file gives one line ``kakudai: error: <path>: <reason>`` and the
batch goes on; a summary (done / skipped / failed) ends the run; the exit
code is 0 only when nothing failed (130 / 143 when interrupted).

Video files (:data:`kakudai.data.formats.VIDEO_EXTENSIONS`) go to
``kakudai.infer.video.upscale_video`` (see :mod:`kakudai.cli.jobs`).
"""

from __future__ import annotations

import functools
import glob
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

# Only light modules here: --help and argument parsing must not load Pillow, numpy or torch.
from ..data.formats import FORMAT_EXTENSIONS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from ..infer.distributed import ClusterOptions
from .errors import error, fail, say
from .jobs import Job, JobOptions, run_job, summary_line, video_backend
from .signals import Terminated, exit_code, sigterm_raises

__all__ = ["BatchOptions", "OUTPUT_FORMATS", "run_batch", "expand_inputs", "plan_outputs", "device_problem"]

OUTPUT_FORMATS = {"png": ".png", "jpg": ".jpg", "webp": ".webp", "tiff": ".tiff"}
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class BatchOptions:
    """One ``upscale`` / ``denoise`` run: its inputs, outputs, size and how it runs.

    Values are as the user gave them; :func:`run_batch` checks them and reports a bad
    one in one line. ``scale``/``width``/``height``/``size`` ("WxH", a box to fit):
    at most one way of sizing, default scale 2. ``tile``: "auto", a number of pixels
    (as text or int), or 0/None for the whole image. ``alpha``, ``style``, ``backend``,
    ``precision`` and the ``job``'s ``model``, ``tta`` and ``denoise``: as
    :class:`kakudai.api.Upscaler` takes them.
    """

    inputs: tuple[str, ...]
    output: str
    recursive: bool = False
    suffix: str = ""
    format: str | None = None  # a key of OUTPUT_FORMATS (None: each input's)
    scale: float | None = None
    width: int | None = None
    height: int | None = None
    size: str | None = None
    tile: str | int | None = "auto"
    threads: int | None = None
    device: str | None = None
    alpha: str = "model"
    style: str = "photo"
    backend: str = "torch"
    precision: str = "fp32"
    job: JobOptions = field(default_factory=JobOptions)
    cluster: ClusterOptions = field(default_factory=ClusterOptions)


# --------------------------------------------------------------------------- inputs
def _wanted(p: Path, with_video: bool) -> bool:
    ext = p.suffix.lower()
    return ext in IMAGE_EXTENSIONS or (with_video and ext in VIDEO_EXTENSIONS)


def _hidden(rel: Path) -> bool:
    return any(part.startswith(".") for part in rel.parts)


def expand_inputs(inputs: list[str] | tuple[str, ...], recursive: bool, exclude: Path | None = None,
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


# --------------------------------------------------------------------------- options
def _size_options(o: BatchOptions) -> tuple[float | None, int | None, int | None]:
    """(scale, width, height) from --scale / --width / --height / --size."""
    width, height = o.width, o.height
    if o.size:
        if width is not None or height is not None:
            raise ValueError("--size cannot be combined with --width/--height")
        try:
            w, h = o.size.lower().split("x")
            width, height = int(w), int(h)
        except ValueError:
            raise ValueError(f"--size must look like 1920x1080, not {o.size!r}") from None
    for v in (width, height):
        if v is not None and v < 1:
            raise ValueError("--width/--height must be positive")
    if width is not None or height is not None:
        if o.scale is not None:
            raise ValueError("--scale cannot be combined with --width/--height/--size")
        return None, width, height
    scale = 2.0 if o.scale is None else float(o.scale)
    if not scale > 0:
        raise ValueError("--scale must be positive")
    return scale, None, None


def parse_tile(text: str | int | None) -> int | str | None:
    """--tile: "auto", or a whole number of pixels >= 0 (0: the whole image). Raises ValueError."""
    if text in (None, "auto"):
        return text
    try:
        tile = int(text)  # type: ignore[arg-type]
    except ValueError:
        raise ValueError(f"--tile must be auto or a number of pixels, not {text!r}") from None
    if tile < 0:
        raise ValueError("--tile must be auto or a positive number of pixels")
    return tile


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
def run_batch(o: BatchOptions, processor: Callable[..., object] | None = None,
              desc: str = "upscale", jpeg_as: str | None = None,
              make_processor: Callable[[], object] | None = None) -> int:
    """Run the batch ``o`` (``kakudai upscale`` by default). Returns the exit code.

    Hooks for other same-driver commands (``kakudai denoise``): ``processor``
    replaces the Upscaler (called as ``processor(data, scale, width, height,
    on_tile=...)`` -> ImageData; no video), ``desc`` labels the progress bar,
    ``jpeg_as`` is the extension JPEG inputs get without ``format``,
    ``make_processor`` builds an equivalent processor in each ``--executor ray`` worker.
    """
    from PIL import Image
    from tqdm import tqdm

    from ..api import Upscaler
    from ..checkpoint import WeightsError
    from ..infer.distributed import options_problem

    try:
        scale, width, height = _size_options(o)
        if o.job.quality is not None and not 1 <= o.job.quality <= 100:
            raise ValueError("--quality must be between 1 and 100")
        if o.threads is not None and o.threads < 1:
            raise ValueError("--threads must be at least 1")
        reason = None if o.device is None else device_problem(o.device)
        if reason:
            raise ValueError(f"--device {o.device}: {reason}")
        tile = parse_tile(o.tile)
        reason = options_problem(o.cluster, o.threads)
        if reason:
            raise ValueError(reason)
    except ValueError as e:
        return fail(e)
    if o.threads:
        import torch

        torch.set_num_threads(o.threads)

    video_fn = video_backend() if processor is None else None
    out = Path(o.output)
    single_input = len(o.inputs) == 1 and Path(o.inputs[0]).is_file()
    out_ext = out.suffix.lower()
    single_file = single_input and not out.is_dir() and (
        out_ext in FORMAT_EXTENSIONS or (video_fn is not None and out_ext in VIDEO_EXTENSIONS))
    if single_input and out_ext and not single_file and not out.is_dir():
        # A new folder named like a file is far more often a typo'd or unsupported file name.
        kinds = "an image or video" if video_fn is not None else "an image"
        return error(out, f"{out.suffix} is not {kinds} file extension (a new output folder takes a name without one)")
    fmt = o.format
    if single_file and fmt and FORMAT_EXTENSIONS.get(OUTPUT_FORMATS[fmt]) != FORMAT_EXTENSIONS.get(out_ext):
        return error(out, f"--format {fmt} does not match the file extension {out.suffix}")
    items, bad = expand_inputs(o.inputs, o.recursive, exclude=None if single_file else out,
                               with_video=video_fn is not None)
    if items and not _prepare_output(out, single_file):
        return 1
    for s, reason in bad:
        error(s, reason)
    if not items:  # nothing to do: no output folder is created either
        return 1
    jobs = plan_outputs(items, out, single_file, o.suffix, fmt, with_video=video_fn is not None, jpeg_as=jpeg_as)

    try:
        if processor is not None:
            up = processor
        else:
            make_processor = functools.partial(
                Upscaler, o.job.model, tile=tile, tta=o.job.tta, alpha=o.alpha, device=o.device,
                denoise=o.job.denoise, style=o.style, backend=o.backend, precision=o.precision)
            up = make_processor()
            up.native_scales()
        if processor is None and scale is not None and jobs:
            up.model_for(up.plan(64, 64, scale)[0])  # load now: a bad weights file fails once, early
    except WeightsError as e:
        return fail(e, o.job.model)
    except (RuntimeError, ValueError) as e:  # e.g. an unknown --device
        return fail(e, o.device or o.job.model)

    if o.cluster.executor == "ray":
        from ..infer.distributed import run_on_ray

        if make_processor is None:
            raise ValueError("--executor ray needs make_processor for a custom processor")
        return run_on_ray(o.cluster, o.job, jobs, make_processor, (scale, width, height), len(bad), desc,
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
        with sigterm_raises():
            for job in jobs:
                bar.set_postfix_str(job.src.name, refresh=False)
                status = run_job(job, up, scale, width, height, o.job, video_fn)
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
        say(summary_line(done, skipped, failed, time.perf_counter() - t0, note))
    if interrupted is not None:
        return exit_code(interrupted)
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

"""One file of a ``kakudai upscale`` / ``denoise`` batch: read, process, write, report.

The local loop (:func:`kakudai.cli.batch.run_batch`) and the Ray executor
(:mod:`kakudai.infer.distributed`) both run each file through :func:`run_job`
here, with the same typed :class:`JobOptions`, so a file gives the same output,
the same skip and the same one-line error (``kakudai: error: <path>: <reason>``)
either way; :func:`summary_line` ends both.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..data.formats import DEFAULT_MAX_PIXELS, FORMAT_EXTENSIONS
from .errors import error, fail, first_line, say

__all__ = ["Job", "JobOptions", "VideoOptions", "run_job", "summary_line", "video_backend"]


@dataclass
class Job:
    """One input and the output it becomes; ``problem`` set when it must not run."""

    src: Path
    dst: Path
    video: bool = False
    problem: str | None = None


@dataclass(frozen=True)
class VideoOptions:
    """Encoder and range settings for video inputs (None: :func:`kakudai.infer.video.upscale_video`'s default)."""

    crf: float | None = None
    preset: str | None = None
    codec: str | None = None
    pix_fmt: str | None = None
    frames: str | None = None  # "A:B": frames, seconds ("5s:8s") or times
    batch: int | None = None   # frames upscaled together

    def given(self) -> dict[str, Any]:
        """The settings that were given, as keyword arguments."""
        return {k: v for k, v in vars(self).items() if v is not None}


@dataclass(frozen=True)
class JobOptions:
    """How each file of a batch is written and reported (the processor does the pixels).

    ``model`` names the model in a weights error; ``tta`` and ``denoise`` (a fixed
    JPEG level 0-3, or None) apply to videos, whose frames go to the model directly.
    """

    model: str = "default"
    overwrite: bool = False
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    quality: int | None = None  # JPEG/WebP quality (None: the writer's default)
    verbose: bool = False        # print the processor's report() for each image
    tta: bool = False
    denoise: int | str | None = None
    video: VideoOptions = field(default_factory=VideoOptions)


def video_backend() -> Callable[..., object]:
    """:func:`kakudai.infer.video.upscale_video` (its own dependency, PyAV, is imported
    only when a video is actually processed)."""
    from ..infer.video import upscale_video

    return upscale_video


def summary_line(done: int, skipped: int, failed: int, seconds: float, note: str | None = None) -> str:
    """The line that ends a batch run, local or on a cluster."""
    line = f"kakudai: {done} done, {skipped} skipped, {failed} failed in {seconds:.1f} s"
    return f"{line} ({note})" if note else line


def run_job(job: Job, up: Any, scale: float | None, width: int | None, height: int | None,
            options: JobOptions, video_fn: Callable[..., None] | None) -> str:
    """Process one job: 'done', 'skipped', 'failed', or 'abort' (weights unusable).

    ``up`` is called as ``up(data, scale, width, height, on_tile=...)`` -> ImageData.
    """
    from tqdm import tqdm

    from ..checkpoint import WeightsError
    from ..data.io import ImageReadError, ImageWriteError, read_image, write_image
    from ..infer.video import VideoError

    if job.problem:
        error(job.src, job.problem)
        return "failed"
    if job.dst.exists() and not options.overwrite:
        say(f"kakudai: skipped: {job.src}: {job.dst} exists (use --overwrite to replace it)")
        return "skipped"
    tiles = None
    try:
        job.dst.parent.mkdir(parents=True, exist_ok=True)
        if job.video:
            _run_video(job, up, scale, options, video_fn)
            return "done"
        data = read_image(job.src, max_pixels=options.max_pixels)

        def on_tile(n: int, total: int) -> None:
            nonlocal tiles
            if total < 2:
                return
            if tiles is None:
                tiles = tqdm(total=total, unit="tile", desc=job.src.name, leave=False, position=1,
                             file=sys.stderr, disable=None, dynamic_ncols=True)
            tiles.update(n - tiles.n)

        result = up(data, scale, width, height, on_tile=on_tile)
        del data
        line = up.report() if options.verbose and hasattr(up, "report") else None
        if line:
            say(f"kakudai: {job.src}: {line}")
        fmt = FORMAT_EXTENSIONS.get(job.dst.suffix.lower())
        write_image(job.dst, result, format=fmt, quality=options.quality)
        return "done"
    except (ImageReadError, ImageWriteError, VideoError) as e:
        fail(e, job.src)
    except WeightsError as e:
        fail(e, options.model)
        return "abort"
    except MemoryError:
        error(job.src, "out of memory (try a smaller --tile)")
    except Exception as e:  # noqa: BLE001  one bad file never stops the batch or prints a traceback
        msg = first_line(e)
        if "allocate" in msg.lower() and "memory" in msg.lower():
            msg = f"out of memory (try a smaller --tile): {msg}"
        error(job.src, msg)
    finally:
        if tiles is not None:
            tiles.close()
    return "failed"


def _run_video(job: Job, up: Any, scale: float | None, options: JobOptions,
               video_fn: Callable[..., object] | None) -> None:
    """Hand a video file to ``kakudai.infer.video.upscale_video``.

    That function decodes ``src``, runs the frames through the same
    ``super_resolve`` pipeline with the model this run loaded (so a bad weights
    file fails once, here, not per frame), and writes ``dst`` through its own
    hidden temporary file, renamed at the end and removed on error, Ctrl-C or
    SIGTERM. It raises ``VideoError`` (``.path``, ``.reason``) for bad input.
    Videos need a scale the model runs natively (``--scale``, not --width/--height).
    """
    if video_fn is None:
        raise ValueError("this command does not take videos")
    if scale is None:
        raise ValueError("videos take --scale, not --width/--height/--size")
    native = up.plan(64, 64, scale)[0]
    if native != scale:
        raise ValueError(f"this model runs videos at x{'/x'.join(f'{s:g}' for s in up.native_scales())}, "
                         f"not x{scale:g}")
    tile = None if up.tile == "auto" else up.tile
    opts = options.video.given()
    if options.denoise not in (None, "auto"):  # "auto": video frames go to the chosen model as they are
        opts["denoise"] = options.denoise
    video_fn(job.src, job.dst, scale, model=up.model_for(native), tile=tile, tta=options.tta, progress=True, **opts)

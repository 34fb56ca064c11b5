"""One file of a ``kakudai upscale`` / ``denoise`` batch: read, process, write, report.

The local loop (:func:`kakudai.cli_upscale.run_upscale`) and the Ray executor
(:mod:`kakudai.infer.distributed`) both run each file through :func:`_run_job`
here, so a file gives the same output, the same skip and the same one-line
error (``kakudai: error: <path>: <reason>``) either way; :func:`summary_line`
ends both. Also the SIGTERM helper both loops use.
"""

from __future__ import annotations

import argparse
import signal
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from .data.formats import FORMAT_EXTENSIONS


def error(path: object, reason: str) -> None:
    """The one-line error format: ``kakudai: error: <path>: <reason>``."""
    _say(f"kakudai: error: {path}: {reason}")


def first_line(e: BaseException) -> str:
    """An exception as the reason of a one-line error: its message's first line, or
    its type's name when it has no message."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _say(line: str) -> None:
    from tqdm import tqdm

    tqdm.write(line, file=sys.stderr)


@dataclass
class Job:
    """One input and the output it becomes; ``problem`` set when it must not run."""

    src: Path
    dst: Path
    video: bool = False
    problem: str | None = None


def _video_backend() -> Callable[..., object] | None:
    """``kakudai.infer.video.upscale_video`` if that module is present (its own
    dependency, PyAV, is only imported when a video is actually processed)."""
    global _VIDEO_ERRORS
    try:
        from .infer import video  # type: ignore[attr-defined]
    except ImportError:
        return None
    _VIDEO_ERRORS = (getattr(video, "VideoError", ValueError),)
    return getattr(video, "upscale_video", None)


_VIDEO_ERRORS: tuple[type[BaseException], ...] = ()


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that cleanup code runs (like KeyboardInterrupt)."""

    def __init__(self, signum: int):
        super().__init__(f"signal {signum}")
        self.signum = signum


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    def handler(signum: int, _frame: object) -> None:
        raise Terminated(signum)

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _weights_message(model: str, e: Exception) -> str:
    msg = str(e)
    named = msg.split(": ", 1)[0].endswith(".safetensors")  # already names its weights file
    return msg if msg.startswith(f"{model}: ") or named else f"{model}: {msg}"


def summary_line(done: int, skipped: int, failed: int, seconds: float, note: str | None = None) -> str:
    """The line that ends a batch run, local or on a cluster."""
    line = f"kakudai: {done} done, {skipped} skipped, {failed} failed in {seconds:.1f} s"
    return f"{line} ({note})" if note else line


def _run_job(job: Job, up: "object", scale: float | None, width: int | None, height: int | None,
             args: argparse.Namespace, video_fn: Callable[..., None] | None) -> str:
    """Process one job: 'done', 'skipped', 'failed', or 'abort' (weights unusable)."""
    from tqdm import tqdm

    from .checkpoint import WeightsError
    from .data.io import ImageReadError, ImageWriteError, read_image, write_image

    if job.problem:
        error(job.src, job.problem)
        return "failed"
    if job.dst.exists() and not args.overwrite:
        _say(f"kakudai: skipped: {job.src}: {job.dst} exists (use --overwrite to replace it)")
        return "skipped"
    tiles = None
    try:
        job.dst.parent.mkdir(parents=True, exist_ok=True)
        if job.video:
            _run_video(job, up, scale, width, height, args, video_fn)
            return "done"
        data = read_image(job.src, max_pixels=args.max_pixels)

        def on_tile(n: int, total: int) -> None:
            nonlocal tiles
            if total < 2:
                return
            if tiles is None:
                tiles = tqdm(total=total, unit="tile", desc=job.src.name, leave=False, position=1,
                             file=sys.stderr, disable=None, dynamic_ncols=True)
            tiles.update(n - tiles.n)

        result = up(data, scale, width, height, on_tile=on_tile)  # type: ignore[operator]
        del data
        line = up.report() if getattr(args, "verbose", False) and hasattr(up, "report") else None
        if line:
            _say(f"kakudai: {job.src}: {line}")
        fmt = FORMAT_EXTENSIONS.get(job.dst.suffix.lower())
        write_image(job.dst, result, format=fmt, quality=args.quality)
        return "done"
    except ImageReadError as e:
        error(job.src, e.reason)
    except ImageWriteError as e:
        error(job.src, f"{e.path}: {e.reason}")
    except _VIDEO_ERRORS as e:
        error(job.src, getattr(e, "reason", str(e)))
    except WeightsError as e:
        _say(f"kakudai: error: {_weights_message(args.model, e)}")
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


def _run_video(job: Job, up: "object", scale: float | None, width: int | None, height: int | None,
               args: argparse.Namespace, video_fn: Callable[..., object] | None) -> None:
    """Hand a video file to ``kakudai.infer.video.upscale_video``.

    That function decodes ``src``, runs the frames through the same
    ``super_resolve`` pipeline with the model this run loaded (so a bad weights
    file fails once, here, not per frame), and writes ``dst`` through its own
    hidden temporary file, renamed at the end and removed on error, Ctrl-C or
    SIGTERM. It raises ``VideoError`` (``.path``, ``.reason``) for bad input.
    Videos need a scale the model runs natively (``--scale``, not --width/--height).
    """
    if video_fn is None:
        raise ValueError("video input needs kakudai.infer.video, which is not installed")
    if scale is None:
        raise ValueError("videos take --scale, not --width/--height/--size")
    native = up.plan(64, 64, scale)[0]  # type: ignore[attr-defined]
    if native != scale:
        raise ValueError(f"this model runs videos at x{'/x'.join(f'{s:g}' for s in up.native_scales())}, "  # type: ignore[attr-defined]
                         f"not x{scale:g}")
    tile = None if up.tile == "auto" else up.tile  # type: ignore[attr-defined]
    # Video-only options (--crf, --preset, --codec, --pix-fmt, --frames, --batch, --denoise) if given.
    opts = {k: getattr(args, k) for k in ("crf", "preset", "codec", "pix_fmt", "frames", "batch", "denoise")
            if getattr(args, k, None) is not None}
    if opts.get("denoise") == "auto":  # video frames go to the chosen model as they are
        del opts["denoise"]
    video_fn(job.src, job.dst, scale, model=up.model_for(native), tile=tile,  # type: ignore[attr-defined]
             tta=args.tta, progress=True, **opts)

"""Video upscaling: decode with PyAV, super-resolve frames in batches, re-encode.

Only the video stream is re-encoded. Audio and subtitle streams are remuxed
packet for packet (no re-encoding), and every video frame keeps its own
timestamp (pts in the source time base), so variable-frame-rate clips keep
their timing and sound stays in sync. Rotation (display matrix), sample aspect
ratio, colour tags (range, matrix, primaries, transfer), stream and file tags
and chapters are carried over. (Containers without negative timestamps, e.g.
Matroska, move the whole file by the audio's lead when AAC priming starts
before the first frame, as ``ffmpeg -c copy`` does; spacing stays exact.)
AVI stores no presentation times, so it cannot keep variable frame rates.

The result is written to a hidden temporary file beside the destination and
renamed at the end; an error, Ctrl-C or SIGTERM removes the temporary file and
leaves any existing destination untouched.

Frames go through :func:`kakudai.infer.upscale.super_resolve`, the same
pipeline as still images: uint8 RGB decoded with the source's own YCbCr matrix
and range, upscaled as a float batch (B, 3, h, w) in [0, 1], quantised to
uint8, converted back to YCbCr with the same matrix and range.

PyAV (``pip install "kakudai[video]"``) ships its own FFmpeg libraries; no
system ffmpeg is needed. It is imported inside the functions that use it.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn as nn

from ..data.io import VIDEO_EXTENSIONS

__all__ = ["VIDEO_EXTENSIONS", "VideoError", "FrameRange", "parse_frame_range", "upscale_video"]

# FFmpeg enum values (AVColorSpace / AVColorRange); stable across FFmpeg versions.
_SPC_BT709, _SPC_FCC, _SPC_BT470BG, _SPC_SMPTE170M = 1, 4, 5, 6
_SPC_SMPTE240M, _SPC_BT2020_NCL, _SPC_BT2020_CL = 7, 9, 10
_RANGE_MPEG, _RANGE_JPEG = 1, 2
# AVColorSpace -> the swscale matrix name PyAV's reformat() accepts.
_SWS_MATRIX = {_SPC_BT709: "itu709", _SPC_FCC: "fcc", _SPC_BT470BG: "itu601",
               _SPC_SMPTE170M: "itu601", _SPC_SMPTE240M: "smpte240m",
               _SPC_BT2020_NCL: "bt2020", _SPC_BT2020_CL: "bt2020"}
# Container-level tags that describe the old file, not the new one.
_STALE_TAGS = {"major_brand", "minor_version", "compatible_brands", "encoder", "rotate",
               "duration", "bps", "number_of_frames", "number_of_bytes"}


class VideoError(Exception):
    """A video cannot be read, processed or written; ``str()`` is ``<path>: <reason>``."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


# ------------------------------------------------------------------ --frames A:B
@dataclass(frozen=True)
class FrameRange:
    """A half-open range [start, end) of a video; None = open end.

    ``unit`` is ``"frame"`` (0-based indices in presentation order, counted from
    the first decoded frame) or ``"second"`` (presentation time from the start
    of the stream). A frame is kept when its index (or start time) is in range.
    """

    start: float | None
    end: float | None
    unit: str  # "frame" | "second"


_CLOCK = re.compile(r"^(?:(\d+):)?(\d+):(\d+(?:\.\d*)?)$")  # [HH:]MM:SS[.frac]


def _parse_time(s: str) -> float | None:
    s = s.strip()
    if not s:
        return None
    if s.endswith("s") and re.fullmatch(r"\d+(?:\.\d*)?s", s):
        return float(s[:-1])
    m = _CLOCK.match(s)
    if m:
        h, mnt, sec = m.groups()
        return int(h or 0) * 3600 + int(mnt) * 60 + float(sec)
    raise ValueError(f"bad time {s!r} (use seconds like 5s / 2.5s, or [HH:]MM:SS[.ms])")


def parse_frame_range(spec: str) -> FrameRange:
    """Parse a ``--frames`` value.

    * ``A:B`` with integers: frame indices, ``A`` included, ``B`` excluded
      (``100:200`` is 100 frames; ``:48`` the first 48, ``100:`` from 100 on);
    * ``A:B`` with seconds: ``5s:8s``, ``2.5s:``, ``:10s``;
    * ``A-B`` with clock times ``[HH:]MM:SS[.ms]`` or seconds:
      ``00:00:05-00:00:08``, ``1:05.5-1:10``, ``5s-8s``.
    """
    s = spec.strip()
    if "-" in s:
        a, _, b = s.partition("-")
        r = FrameRange(_parse_time(a), _parse_time(b), "second")
    elif s.count(":") == 1:
        a, b = (p.strip() for p in s.split(":"))
        if all(re.fullmatch(r"\d*", p) for p in (a, b)):
            r = FrameRange(int(a) if a else None, int(b) if b else None, "frame")
        elif all(p == "" or re.fullmatch(r"\d+(?:\.\d*)?s", p) for p in (a, b)):
            r = FrameRange(_parse_time(a), _parse_time(b), "second")
        else:
            raise ValueError(f"bad --frames {spec!r}: use frame indices (100:200), seconds "
                             "(5s:8s) or clock times (00:00:05-00:00:08)")
    else:
        raise ValueError(f"bad --frames {spec!r}: use frame indices (100:200), seconds "
                         "(5s:8s) or clock times (00:00:05-00:00:08)")
    if r.start is not None and r.end is not None and r.end <= r.start:
        raise ValueError(f"bad --frames {spec!r}: the end must come after the start")
    return r


# ------------------------------------------------------------------ helpers
def _import_av() -> Any:
    try:
        import av
    except ImportError:
        raise VideoError("video", 'video needs PyAV: pip install "kakudai[video]"') from None
    return av


def _video_stream(container: Any) -> Any:
    """The first real video stream (cover art is stored as a one-frame video stream)."""
    for s in container.streams.video:
        if not s.disposition & s.disposition.__class__.attached_pic:
            return s
    return None


def _matrix_for(frame: Any) -> tuple[str, int, int]:
    """(swscale matrix, AVColorSpace tag, AVColorRange) to use for ``frame``.

    An untagged YCbCr source is read the way players read it (BT.601 up to
    576 lines, BT.709 above) and the output is tagged with that matrix, since
    players would otherwise assume BT.709 for the now high-definition frames
    and shift every colour. Untagged range means limited (the video default).
    """
    cs = int(frame.colorspace)
    if cs not in _SWS_MATRIX:
        cs = _SPC_SMPTE170M if frame.height <= 576 else _SPC_BT709
    rng = int(frame.color_range)
    if rng not in (_RANGE_MPEG, _RANGE_JPEG):
        rng = _RANGE_JPEG if frame.format.name.startswith("yuvj") else _RANGE_MPEG
    return _SWS_MATRIX[cs], cs, rng


def _display_matrix(frame: Any) -> list[int] | None:
    """The frame's 3x3 display matrix (rotation/flip), as 9 int32, if it has one."""
    for sd in frame.side_data:
        if "DISPLAYMATRIX" in str(sd.type):
            m = np.frombuffer(bytes(sd), dtype="<i4")
            return [int(v) for v in m[:9]] if m.size >= 9 else None
    return None


def _sws_flags(av: Any, interpolation: str = "BILINEAR") -> int:
    """swscale flags for a colour conversion that keeps the mean level.

    swscale's default YCbCr -> RGB path for subsampled chroma (4:2:0, 4:2:2,
    NV12) rounds down: luma comes back about 1.1 levels darker (0.8 in full
    range), once per decode. ACCURATE_RND with FULL_CHR_H_INT takes the exact
    path; ACCURATE_RND also removes a smaller chroma bias from RGB -> YCbCr.
    """
    i = av.video.reformatter.Interpolation
    return int(i[interpolation] | i.ACCURATE_RND | i.FULL_CHR_H_INT)


def _to_rgb(frame: Any, matrix: str, rng: int, size: tuple[int, int], av: Any) -> np.ndarray:
    """Decoded frame -> (h, w, 3) uint8 RGB, converted with the source's matrix and range.

    ``size`` (w, h) is the first frame's: a stream that changes resolution midway
    is resized back to it (bicubic), since the encoder's size is fixed.
    """
    kw: dict[str, Any] = {"interpolation": _sws_flags(av)}
    if (frame.width, frame.height) != tuple(size):
        kw = {"width": size[0], "height": size[1], "interpolation": _sws_flags(av, "BICUBIC")}
    if frame.format.is_rgb:
        return frame.to_ndarray(format="rgb24", **kw)
    return frame.to_ndarray(format="rgb24", src_colorspace=matrix, src_color_range=rng, **kw)


def _even_crop(pix_fmt: str, w: int, h: int, av: Any) -> tuple[int, int]:
    """Largest size <= (w, h) that ``pix_fmt``'s chroma subsampling can encode."""
    fmt = av.VideoFormat(pix_fmt, 3, 3)
    sub_w = any(c.width < 3 for c in fmt.components)
    sub_h = any(c.height < 3 for c in fmt.components)
    return (w - (w % 2) if sub_w else w), (h - (h % 2) if sub_h else h)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt so the cleanup path runs for both.

    Left alone when the caller already handles SIGTERM (e.g. the CLI's batch
    runner raises its own exception, which the same cleanup path catches).
    """
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL):
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _resolve_denoise(denoise: Any, tta: bool = False) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """A batch denoiser, float (B, 3, h, w) in [0, 1] -> same, applied before upscaling.

    ``denoise``: None (off); a callable on such batches; an int 0-3 (waifu2x's
    JPEG noise levels, as ``kakudai upscale --denoise`` and the image API);
    ``"noise:SIGMA"``; ``"jpeg:QUALITY"`` or ``"jpeg"`` (blind). The settings and
    model are :class:`kakudai.infer.restore.Denoiser`'s, run on whole batches.
    Raises ValueError (bad setting) or WeightsError (model not shipped).
    """
    if denoise is None or denoise is False:
        return None
    if callable(denoise):
        return denoise
    from .restore import Denoiser, restore

    if isinstance(denoise, str) and not denoise.strip().isdigit():
        kind, _, value = denoise.strip().partition(":")
        try:
            if kind == "noise":
                den = Denoiser(sigma=float(value), tta=tta)
            elif kind == "jpeg":
                den = Denoiser(jpeg=int(value) if value else True, tta=tta)
            else:
                raise ValueError
        except ValueError as e:
            raise ValueError(f"bad denoise {denoise!r}: use 0-3, noise:SIGMA or jpeg[:QUALITY]"
                             + (f" ({e})" if str(e) else "")) from None
    else:
        den = Denoiser(noise_level=int(denoise), tta=tta)
    return lambda x: restore(den.model, x, den.level, tile=den.tile, tta=den.tta,
                             tile_budget=den.tile_budget)


@dataclass
class _Pending:
    """A decoded frame waiting for its batch: pixels and the timing to give it back."""

    rgb: np.ndarray
    pts: int
    duration: int


# ------------------------------------------------------------------ the driver
def upscale_video(src: str | os.PathLike, dst: str | os.PathLike, scale: float,
                  model: "nn.Module | str" = "default", denoise: Any = None, crf: float = 18,
                  preset: str | None = "medium", codec: str | None = None, pix_fmt: str = "yuv420p",
                  frames: "FrameRange | str | None" = None, batch: int = 4,
                  tile: int | str | None = None, tta: bool = False,
                  progress: "bool | Callable[[int, int | None], None]" = True) -> dict[str, Any]:
    """Upscale the video ``src`` by ``scale`` into ``dst`` (format from its extension).

    ``model``: a loaded model or a name/path for :func:`kakudai.zoo.load_model`.
    ``crf``/``preset`` are passed to encoders that have them (x264, x265, VP9,
    SVT-AV1); ``codec``/``pix_fmt`` are any encoder and pixel format PyAV offers
    (``codec=None``: libx264, or libvpx-vp9 for .webm, which cannot hold H.264).
    ``frames``: a :class:`FrameRange` or its string (see :func:`parse_frame_range`);
    the excerpt starts at time 0 in the output, audio and subtitles cut to match.
    ``batch`` frames are upscaled per :func:`super_resolve` call; ``tile``/``tta``
    as for images. ``denoise``: None, a level 0-3 (as for images), ``"noise:SIGMA"``,
    ``"jpeg[:QUALITY]"`` or a callable on float batches, applied before upscaling
    (see :func:`_resolve_denoise`). ``progress``: True for a tqdm bar on stderr
    (frames/s, ETA), or a callable(done, total) called after each batch.

    Returns a summary: frames, input/output size, seconds, frames per second.
    Raises :class:`VideoError` for unreadable/unsupported input or unwritable output.
    """
    av = _import_av()
    from ..checkpoint import WeightsError
    from ..zoo import load_model
    from .upscale import super_resolve

    src, dst = Path(src), Path(dst)
    if codec is None:
        codec = "libvpx-vp9" if dst.suffix.lower() == ".webm" else "libx264"
    if isinstance(frames, str):
        try:
            frames = parse_frame_range(frames)
        except ValueError as e:
            raise VideoError(src, str(e)) from None
    if isinstance(model, (str, os.PathLike)):
        try:
            model = load_model(str(model), scale, task="upscale")
        except WeightsError as e:
            raise _weights_error(e, model) from None
    try:
        denoise_fn = _resolve_denoise(denoise, tta)
    except WeightsError as e:
        raise _weights_error(e, "denoise") from None
    except ValueError as e:
        raise VideoError(src, str(e)) from None
    if batch < 1:
        raise VideoError(src, f"batch must be >= 1, got {batch}")
    if not src.exists():
        raise VideoError(src, "no such file")
    if src.resolve() == dst.resolve():
        raise VideoError(dst, "output would overwrite the input")

    try:
        inp = av.open(str(src), "r")
    except av.FFmpegError as e:
        raise VideoError(src, f"cannot read video ({_ff_reason(e)})") from None
    tmp = dst.with_name(f".{dst.name}.part{dst.suffix}")
    out = None
    try:
        with _sigterm_as_interrupt():
            vin = _video_stream(inp)
            if vin is None:
                raise VideoError(src, "no video stream")
            if vin.codec_context is None:
                raise VideoError(src, "unsupported video codec (no decoder for it)")
            vin.thread_type = "AUTO"
            try:
                dst.parent.mkdir(parents=True, exist_ok=True)
                out = av.open(str(tmp), "w")
            except av.FFmpegError as e:
                raise VideoError(dst, f"cannot write ({_ff_reason(e)})") from None
            except ValueError as e:  # no muxer for the extension
                raise VideoError(dst, f"unknown output format {dst.suffix!r} ({e})") from None
            except OSError as e:
                raise VideoError(dst, f"cannot write ({e.strerror or e})") from None
            stats = _Transcoder(av, inp, vin, out, src, dst, model, scale, super_resolve,
                                denoise_fn, crf, preset, codec, pix_fmt, frames, batch, tile,
                                tta, progress).run()
            try:
                out.close()
            except av.FFmpegError as e:
                raise VideoError(dst, f"cannot finish writing ({_ff_reason(e)})") from None
            out = None
            try:
                os.replace(tmp, dst)
            except OSError as e:
                raise VideoError(dst, f"cannot write ({e.strerror or e})") from None
            return stats
    except av.FFmpegError as e:
        raise VideoError(src, f"cannot process video ({_ff_reason(e)})") from None
    finally:
        if out is not None:
            with contextlib.suppress(Exception):
                out.close()
        inp.close()
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _weights_error(e: Exception, what: object) -> VideoError:
    """A WeightsError as a VideoError naming the weights file (its message starts with it)."""
    path, sep, reason = str(e).partition(": ")
    return VideoError(path, reason) if sep else VideoError(what, str(e))


def _ff_reason(e: BaseException) -> str:
    """FFmpeg's own words for an error, without PyAV's errno decoration."""
    msg = getattr(e, "strerror", None) or str(e)
    return str(msg).strip().rstrip(".") or type(e).__name__


def _add_video(av: Any, out: Any, vin: Any, codec: str, pix_fmt: str, dst: Path) -> Any:
    """The output video stream (first, as players expect); configured by :func:`_configure_video`."""
    try:
        vout = out.add_stream(codec, rate=vin.average_rate or vin.guessed_rate or Fraction(25))
    except (ValueError, av.FFmpegError) as e:
        raise VideoError(dst, f"cannot encode with {codec!r} here ({_ff_reason(e)})") from None
    if vout.type != "video":
        raise VideoError(dst, f"{codec!r} is not a video encoder")
    formats = [f.name for f in (vout.codec_context.codec.video_formats or [])]
    if formats and pix_fmt not in formats:
        raise VideoError(dst, f"{codec!r} cannot encode {pix_fmt}; it takes {', '.join(formats)}")
    return vout


def _configure_video(vout: Any, vin: Any, first: Any, size: tuple[int, int], codec: str,
                     pix_fmt: str, crf: float, preset: str | None) -> Any:
    """Set the output video stream from the first decoded frame (before the encoder opens)."""
    cc = vout.codec_context
    cc.width, cc.height = size
    cc.pix_fmt = pix_fmt
    # The source time base, so every frame's pts passes through unchanged.
    cc.time_base = vin.time_base
    vout.time_base = vin.time_base
    if vin.codec_context.sample_aspect_ratio:
        cc.sample_aspect_ratio = vin.codec_context.sample_aspect_ratio
    _, cs, rng = _matrix_for(first)
    cc.colorspace, cc.color_range = cs, rng
    cc.color_primaries, cc.color_trc = int(first.color_primaries), int(first.color_trc)
    private = {o.name for o in cc.supported_options.private}
    opts = {}
    if "crf" in private and crf is not None:
        opts["crf"] = f"{crf:g}"
        if codec.startswith("libvpx"):
            opts["b"] = "0"  # VP9's constant-quality mode needs bitrate 0
    if "preset" in private and preset is not None:
        opts["preset"] = str(preset)
    cc.options = opts
    matrix = _display_matrix(first)
    if matrix is not None:
        vout.set_display_matrix(matrix)
    vout.metadata.update(_fresh_tags(vin.metadata))
    return vout


def _add_copies(av: Any, inp: Any, out: Any, vin: Any, src: Path, dst: Path) -> dict[int, Any]:
    """Output streams for every audio and subtitle stream, copied without re-encoding."""
    copies: dict[int, Any] = {}
    for s in inp.streams:
        if s.type not in ("audio", "subtitle") or s is vin:
            continue
        name = s.codec_context.name if s.codec_context is not None else "unknown"
        try:
            o = out.add_stream_from_template(s)
        except (ValueError, av.FFmpegError):
            what = f"{s.type} stream #{s.index} ({name}) cannot be stored in {dst.suffix or 'this format'}"
            if s.type == "audio":  # never drop sound silently
                raise VideoError(dst, f"{what}; use a .mkv output") from None
            print(f"kakudai: warning: {src}: {what}; skipped (use .mkv to keep it)", file=sys.stderr)
            continue
        o.metadata.update(_fresh_tags(s.metadata))
        with contextlib.suppress(AttributeError, ValueError, TypeError):
            o.disposition = s.disposition
        copies[s.index] = o
    return copies


def _fresh_tags(tags: dict[str, str]) -> dict[str, str]:
    """Tags worth copying: not those describing the old encode (brand, encoder, statistics)."""
    return {k: v for k, v in tags.items()
            if k.lower() not in _STALE_TAGS and not k.startswith("_STATISTICS")}


def _expected_frames(vin: Any, frames: FrameRange | None) -> int | None:
    """Frames the run will produce, for the progress bar (None if unknown)."""
    rate = vin.average_rate or vin.guessed_rate
    total = vin.frames or None
    seconds = float(vin.duration * vin.time_base) if vin.duration else None
    if seconds is None and vin.container.duration:  # e.g. Matroska: only the file's duration
        seconds = vin.container.duration / 1e6
    if total is None and seconds and rate:
        total = int(round(seconds * float(rate)))
    if frames is None:
        return total
    if frames.unit == "frame":
        end = frames.end if frames.end is not None else total
        return None if end is None else max(0, int(end) - int(frames.start or 0))
    if not rate:
        return None
    end_t = frames.end if frames.end is not None else seconds
    return None if end_t is None else max(0, int(round((end_t - (frames.start or 0)) * float(rate))))


class _Transcoder:
    """One run: demux, decode, batch-upscale, encode, remux copied streams.

    Copied packets wait in a queue and are released only once a video frame
    at or after their time has been decoded, so a cut (``frames``) never keeps
    sound past its last frame and the muxer gets well interleaved input.
    """

    def __init__(self, av: Any, inp: Any, vin: Any, out: Any, src: Path, dst: Path,
                 model: nn.Module, scale: float, super_resolve: Callable,
                 denoise_fn: Callable | None, crf: float, preset: str | None, codec: str,
                 pix_fmt: str, frames: FrameRange | None, batch: int, tile: int | str | None,
                 tta: bool, progress: Any) -> None:
        self.av, self.inp, self.vin, self.out, self.src, self.dst = av, inp, vin, out, src, dst
        self.model, self.scale, self.super_resolve, self.denoise_fn = model, scale, super_resolve, denoise_fn
        self.crf, self.preset, self.codec, self.pix_fmt = crf, preset, codec, pix_fmt
        self.frames, self.batch, self.tile, self.tta = frames, batch, tile, tta
        self.tb: Fraction = vin.time_base
        self.origin = vin.start_time or 0  # stream pts of t = 0 for time ranges
        self.by_time = frames is not None and frames.unit == "second"
        self.vout_stream = _add_video(av, out, vin, codec, pix_fmt, dst)
        self.copies = _add_copies(av, inp, out, vin, src, dst)
        out.metadata.update(_fresh_tags(inp.metadata))
        if frames is None:  # a cut would need its chapters moved and clipped: not done
            with contextlib.suppress(AttributeError, ValueError, av.FFmpegError):
                chapters = inp.chapters()
                if chapters:
                    out.set_chapters(chapters)
        self.damaged = 0                   # packets the decoder rejected (skipped)
        self.queue: deque[Any] = deque()   # copied packets not yet muxed
        self.pending: list[_Pending] = []  # decoded frames waiting for their batch
        self.vout: Any = None
        self.shift = 0                     # pts of the first kept frame when cutting
        self.lo: float | None = None       # window start (input seconds), once known
        self.idx = 0                       # decoded frames so far (presentation order)
        self.done = 0
        self.last_pts: int | None = None   # last kept frame's output pts
        self.end_pts: int | None = None    # ... plus its duration
        self.colour: tuple[str, int, int] = ("itu709", _SPC_BT709, _RANGE_MPEG)
        self.size = (0, 0)                 # output (width, height)
        self.in_size = (0, 0)              # first frame's size; later frames are resized to it
        self.total = _expected_frames(vin, frames)
        self.bar = None
        if progress is True:
            from tqdm import tqdm
            # leave=None: a bar nested under a batch bar disappears when done;
            # disable=None: no bar when stderr is not a terminal (logs), as in the CLI.
            self.bar = tqdm(total=self.total, unit="frame", desc=src.name, file=sys.stderr,
                            dynamic_ncols=True, smoothing=0.1, leave=None, disable=None)
        self.report = progress if callable(progress) else None

    # ---------------------------------------------------------------- copied streams
    def _release(self, until: float | None) -> None:
        """Mux (or drop, if outside the window) queued packets that start before ``until``."""
        q = self.queue
        while q:
            pkt = q[0]
            t = float(pkt.pts * pkt.time_base) if pkt.pts is not None else None
            if until is not None and t is not None and t >= until - 1e-9:
                break
            q.popleft()
            if self.lo is None or (t is not None and t < self.lo - 1e-6):
                continue  # before the first kept frame of a cut (or nothing kept yet)
            o = self.copies[pkt.stream.index]
            if self.shift:  # a cut starts at 0: move the packet as far as the video
                off = int(round(float(self.shift * self.tb / pkt.time_base)))
                if pkt.pts is not None:
                    pkt.pts -= off
                if pkt.dts is not None:
                    pkt.dts -= off
            pkt.stream = o
            self.out.mux(pkt)

    # ---------------------------------------------------------------- video
    def _start_video(self, frame: Any, pts: int) -> None:
        self.colour = _matrix_for(frame)
        self.in_size = (frame.width, frame.height)
        sw, sh = round(frame.width * self.scale), round(frame.height * self.scale)
        ew, eh = _even_crop(self.pix_fmt, sw, sh, self.av)
        if (ew, eh) != (sw, sh):
            print(f"kakudai: warning: {self.src}: {sw}x{sh} cropped to {ew}x{eh} "
                  f"({self.pix_fmt} needs even sizes)", file=sys.stderr)
        self.size = (ew, eh)
        self.vout = _configure_video(self.vout_stream, self.vin, frame, self.size, self.codec,
                                     self.pix_fmt, self.crf, self.preset)
        self.shift = pts if self.frames is not None else 0
        self.lo = float(pts * self.tb) if self.frames is not None else -math.inf

    def _flush_batch(self) -> None:
        if not self.pending:
            return
        av, tb = self.av, self.tb
        x = torch.from_numpy(np.stack([p.rgb for p in self.pending])).permute(0, 3, 1, 2)
        x = x.float().div_(255.0)
        if self.denoise_fn is not None:
            x = self.denoise_fn(x)
        y = self.super_resolve(self.model, x, self.scale, tile=self.tile, tta=self.tta,
                               out_dtype=torch.uint8)
        w, h = self.size
        y = y[:, :, :h, :w].permute(0, 2, 3, 1).contiguous().numpy()
        matrix, cs, rng = self.colour
        sws = _sws_flags(av)
        for p, img in zip(self.pending, y):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f = f.reformat(format=self.pix_fmt, dst_colorspace=matrix, dst_color_range=rng,
                           interpolation=sws)
            f.colorspace, f.color_range = cs, rng
            f.pts, f.time_base = p.pts, tb
            if p.duration:
                f.duration = p.duration
            for pkt in self.vout.encode(f):
                self.out.mux(pkt)
        n = len(self.pending)
        self.done += n
        self.pending = []
        if self.bar is not None:
            self.bar.update(n)
        if self.report is not None:
            self.report(self.done, self.total)

    def _take(self, frame: Any) -> bool:
        """Queue one decoded frame for upscaling; False once past the end of the range."""
        idx = self.idx
        self.idx += 1
        pts = frame.pts
        if pts is None:  # raw streams may carry no timestamps: continue the clock
            pts = self.last_pts + self.shift + max(1, self._frame_ticks()) if self.last_pts is not None else 0
        t = float((pts - self.origin) * self.tb)
        fr = self.frames
        if fr is not None:
            if self.by_time:
                before = t < (fr.start or 0) - 1e-9
                after = fr.end is not None and t >= fr.end - 1e-9
            else:
                before = idx < int(fr.start or 0)
                after = fr.end is not None and idx >= int(fr.end)
            if after:
                return False
            if before:
                self._release(float(pts * self.tb))  # nothing kept yet: drops them
                return True
        if self.vout is None:
            self._start_video(frame, pts)
        self._release(float(pts * self.tb))
        out_pts = pts - self.shift
        if self.last_pts is not None and out_pts <= self.last_pts:
            # Encoders reject non-increasing pts (broken files); nudge by one tick.
            out_pts = self.last_pts + 1
        dur = int(frame.duration or 0)
        self.last_pts, self.end_pts = out_pts, out_pts + (dur or self._frame_ticks())
        matrix, _, rng = self.colour
        rgb = _to_rgb(frame, matrix, rng, self.in_size, self.av)
        self.pending.append(_Pending(rgb, out_pts, dur))
        if len(self.pending) >= self.batch:
            self._flush_batch()
        return True

    def _frame_ticks(self) -> int:
        """One nominal frame period in time-base ticks."""
        rate = self.vin.average_rate or self.vin.guessed_rate or Fraction(25)
        return max(1, int(round(1 / (rate * self.tb))))

    # ---------------------------------------------------------------- the run
    def run(self) -> dict[str, Any]:
        fr, vin = self.frames, self.vin
        if self.by_time and fr is not None and (fr.start or 0) > 0:
            # Jump near the start; decoding resumes at the keyframe before it.
            self.inp.seek(self.origin + int(fr.start / self.tb), stream=vin, backward=True,
                          any_frame=False)
        t0 = time.perf_counter()
        video_done = False
        end_t: float | None = None       # end of the kept video, input seconds
        past_end: set[int] = set()       # copied streams already beyond end_t
        streams = [vin] + [s for s in self.inp.streams if s.index in self.copies]
        try:
            for pkt in self.inp.demux(*streams):
                if pkt.stream is vin:
                    if video_done or pkt.size == 0:
                        continue
                    try:
                        decoded = vin.decode(pkt)
                    except self.av.InvalidDataError:
                        self.damaged += 1  # a damaged packet: skip it, as players do
                        continue
                    for frame in decoded:
                        if not self._take(frame):
                            video_done, end_t = True, self._end_time()
                            break
                    continue
                if pkt.dts is None and pkt.size == 0:
                    continue  # the demuxer's end-of-stream marker
                self.queue.append(pkt)
                if video_done:
                    # After a cut's last frame, read on only until every copied stream passes it.
                    if pkt.pts is not None and end_t is not None and float(pkt.pts * pkt.time_base) >= end_t:
                        past_end.add(pkt.stream.index)
                    if past_end >= set(self.copies):
                        break
            if not video_done:
                for frame in vin.decode(None):
                    if not self._take(frame):
                        video_done, end_t = True, self._end_time()
                        break
            self._flush_batch()
            if self.vout is None:
                raise VideoError(self.src, "no frames in the requested range" if fr is not None
                                 else "no decodable video frames")
            self._release(end_t if fr is not None else None)
            for pkt in self.vout.encode(None):
                self.out.mux(pkt)
        finally:
            if self.bar is not None:
                self.bar.close()
        if self.damaged:
            print(f"kakudai: warning: {self.src}: {self.damaged} damaged video packet(s) skipped",
                  file=sys.stderr)
        secs = time.perf_counter() - t0
        return {"frames": self.done, "input_size": (vin.codec_context.width, vin.codec_context.height),
                "output_size": self.size, "seconds": secs,
                "fps": self.done / secs if secs > 0 else math.nan}

    def _end_time(self) -> float | None:
        """End of the kept video in input seconds: last kept frame's pts + its duration."""
        if self.end_pts is None:
            return None
        return float((self.end_pts + self.shift) * self.tb)

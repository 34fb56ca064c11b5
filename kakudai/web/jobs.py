"""A bounded job queue that runs upscales on worker threads, off the event loop,
with the models it loaded kept between requests.

At most ``max_running`` jobs run at once and ``max_waiting`` more wait in
order; a request beyond that gets :class:`Busy` (HTTP 503). A finished job
keeps its PNG in a private temporary folder, under a random id the server made
(never a name from the request), until it is fetched and deleted, expires after
``result_ttl`` seconds, or is pushed out by newer results; the folder is removed
when the server stops.

Each request is served by a :class:`kakudai.api.Upscaler` built for its model,
noise reduction and style; :class:`Upscalers` keeps the most recently used ones
(and with them every model and restorer they loaded), so a second request with
the same settings loads nothing.
"""

from __future__ import annotations

import io
import logging
import secrets
import tempfile
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .options import ApiError, UpscaleRequest, WebConfig

__all__ = ["Busy", "Job", "JobQueue", "Rendered", "Upscalers", "render_png"]

log = logging.getLogger("kakudai.web")


class Busy(Exception):
    """The queue is full."""


@dataclass
class Rendered:
    """A finished upscale: the PNG file's bytes and what produced it."""

    png: bytes
    width: int
    height: int
    model: str
    seconds: float


class Upscalers:
    """The Upscalers built for requests, by :meth:`UpscaleRequest.upscaler_key`, the
    ``cfg.kept_upscalers`` most recently used kept (each with the models it loaded).

    :meth:`use` hands one out under its own lock: the same settings run one request
    at a time (an Upscaler records its last image's reading), different settings in
    parallel, up to ``cfg.max_running``.
    """

    def __init__(self, cfg: WebConfig):
        self.cfg = cfg
        self._kept: OrderedDict[tuple, tuple[Any, threading.Lock]] = OrderedDict()
        self._lock = threading.Lock()

    def use(self, req: UpscaleRequest) -> tuple[Any, threading.Lock]:
        """(Upscaler, its lock) for ``req``: a kept one, or a new one (restorers for a
        fixed noise level load now, so their missing weights fail here)."""
        from ..api import Upscaler

        key = req.upscaler_key()
        with self._lock:
            if key in self._kept:
                self._kept.move_to_end(key)
                return self._kept[key]
        up = Upscaler(req.model, tile=self.cfg.tile, denoise=req.denoise, style=req.style)
        with self._lock:
            entry = self._kept.setdefault(key, (up, threading.Lock()))
            self._kept.move_to_end(key)
            while len(self._kept) > max(1, self.cfg.kept_upscalers):
                self._kept.popitem(last=False)  # a job still using it keeps its own reference
            return entry

    def __len__(self) -> int:
        with self._lock:
            return len(self._kept)


def render_png(data: bytes, req: UpscaleRequest, cfg: WebConfig, upscalers: Upscalers,
               progress: Callable[[int, int], None] | None = None) -> Rendered:
    """Decode ``data``, upscale it with the :class:`kakudai.api.Upscaler` for ``req``
    (kept in ``upscalers``), encode PNG.

    The result is what :func:`kakudai.upscale` gives for the same image and options.
    CPU-bound: call it on a worker thread. Errors the user can fix become
    :class:`ApiError` (4xx); anything else propagates (500).
    """
    from PIL import Image

    from ..checkpoint import WeightsError
    from ..data.io import ImageReadError, from_pil, to_pil
    from ..zoo import resolve

    t0 = time.perf_counter()
    try:
        im = Image.open(io.BytesIO(data), formats=list(cfg.formats))
        im.load()  # the header was checked already; this decodes the pixels
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ApiError(400, f"cannot decode the image ({e})") from None
    try:
        up, lock = upscalers.use(req)
        image = from_pil(im)
        with lock:
            out = to_pil(up(image, **req.size_kwargs(), on_tile=progress))
        del image
    except (WeightsError, ImageReadError) as e:
        raise ApiError(400, str(e)) from None
    except MemoryError:
        raise ApiError(503, "out of memory: try a smaller image or scale") from None
    except ValueError as e:  # the API's word for an option or image it cannot serve
        raise ApiError(400, str(e)) from None
    finally:
        im.close()
    buf = io.BytesIO()
    extra: dict[str, Any] = {}
    if out.info.get("icc_profile"):  # keep the colour space the API carried over
        extra["icc_profile"] = out.info["icc_profile"]
    out.save(buf, format="PNG", compress_level=cfg.png_compress_level, **extra)
    used = resolve(req.model, req.scale).name if req.scale is not None else req.model
    return Rendered(buf.getvalue(), out.width, out.height, used, time.perf_counter() - t0)


@dataclass(eq=False)
class Job:
    """One upscale. ``state``: queued -> running -> done | error (or cancelled)."""

    id: str
    seq: int
    request: UpscaleRequest
    input_size: tuple[int, int]
    data: bytes | None
    keep_file: bool                       # True: result goes to a temp file (job API)
    state: str = "queued"
    progress: float | None = None         # 0-1 when the API reports tiles, else None
    created: float = field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None
    error: ApiError | None = None
    result: Rendered | None = None        # in memory (simple call) ...
    path: Path | None = None              # ... or on disk (job API), png bytes dropped
    forgotten: bool = False               # nobody will fetch it: drop the result at once
    future: Future | None = None

    def status(self, position: int) -> dict[str, Any]:
        now = time.monotonic()
        out: dict[str, Any] = {"id": self.id, "state": self.state, "position": position,
                               "progress": self.progress,
                               "waited": round((self.started or now) - self.created, 2),
                               "elapsed": round((self.finished or now) - self.started, 2)
                               if self.started else 0.0}
        if self.error is not None:
            out["error"] = self.error.message
            out["status"] = self.error.status
        r = self.result
        if r is not None:
            out.update(width=r.width, height=r.height, model=r.model, seconds=round(r.seconds, 3))
        return out


class JobQueue:
    """Runs jobs on ``cfg.max_running`` worker threads with a bounded wait list."""

    def __init__(self, cfg: WebConfig, work: Callable[..., Rendered] = render_png):
        self.cfg, self.work = cfg, work
        self.upscalers = Upscalers(cfg)
        self._pool = ThreadPoolExecutor(max_workers=cfg.max_running, thread_name_prefix="kakudai-job")
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._seq = 0
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._closed = False

    # ---------------------------------------------------------------- submit / run
    def submit(self, data: bytes, req: UpscaleRequest, input_size: tuple[int, int],
               keep_file: bool) -> Job:
        """Queue a job, or raise :class:`Busy` when running + waiting is at the limit."""
        self.sweep()
        with self._lock:
            if self._closed:
                raise Busy("the server is shutting down")
            active = sum(j.state in ("queued", "running") for j in self._jobs.values())
            if active >= self.cfg.max_running + self.cfg.max_waiting:
                raise Busy(f"{active} jobs are running or waiting; try again shortly")
            self._seq += 1
            job = Job(secrets.token_hex(16), self._seq, req, input_size, data, keep_file)
            self._jobs[job.id] = job
            job.future = self._pool.submit(self._run, job)
        return job

    def _run(self, job: Job) -> None:
        with self._lock:
            if job.state != "queued":
                return
            job.state, job.started = "running", time.monotonic()

        def progress(done: int, total: int) -> None:
            job.progress = min(1.0, done / total) if total else None

        result: Rendered | None = None
        error: ApiError | None = None
        try:
            result = self.work(job.data, job.request, self.cfg, self.upscalers, progress)
        except ApiError as e:
            error = e
        except Exception as e:  # a bug or an exhausted machine: logged, the server goes on
            log.exception("job %s failed", job.id)
            error = ApiError(500, f"internal error: {type(e).__name__}: {e}")
        path = None
        if result is not None and job.keep_file and not job.forgotten:
            path = self._tmpdir() / f"{job.id}.png"
            path.write_bytes(result.png)
            result.png = b""
        with self._lock:
            job.data = None
            job.finished = time.monotonic()
            job.state, job.error, job.result, job.path = ("error" if error else "done"), error, result, path
            if job.forgotten:
                self._drop(job)
        if error is None:
            log.info("job %s: %dx%d -> %dx%d with %s in %.2f s", job.id[:8], *job.input_size,
                     result.width, result.height, result.model, result.seconds)

    # ---------------------------------------------------------------- look up / remove
    def get(self, job_id: str) -> Job | None:
        self.sweep()
        with self._lock:
            return self._jobs.get(job_id)

    def position(self, job: Job) -> int:
        """Jobs ahead of ``job``: running ones plus those queued before it (0 once it runs)."""
        with self._lock:
            if job.state != "queued":
                return 0
            return sum(1 for j in self._jobs.values()
                       if j.state == "running" or (j.state == "queued" and j.seq < job.seq))

    def read_result(self, job: Job) -> bytes:
        with self._lock:
            if job.path is not None:
                return job.path.read_bytes()
            return job.result.png if job.result else b""

    def forget(self, job: Job) -> None:
        """Nobody needs ``job`` any more: cancel it if queued, drop its result when done."""
        with self._lock:
            if job.state == "queued":
                job.state = "cancelled"
                if job.future is not None:
                    job.future.cancel()
                self._drop(job)
            elif job.state == "running":
                job.forgotten = True
            else:
                self._drop(job)

    def _drop(self, job: Job) -> None:  # caller holds the lock
        self._jobs.pop(job.id, None)
        job.data = None
        if job.path is not None:
            job.path.unlink(missing_ok=True)
            job.path = None

    def sweep(self) -> None:
        """Drop expired results, and the oldest beyond ``max_results``."""
        now = time.monotonic()
        with self._lock:
            finished = sorted((j for j in self._jobs.values() if j.finished is not None),
                              key=lambda j: j.finished)
            excess = len(finished) - self.cfg.max_results
            for i, j in enumerate(finished):
                if i < excess or now - j.finished > self.cfg.result_ttl:
                    self._drop(j)

    def counts(self) -> dict[str, int]:
        with self._lock:
            states = [j.state for j in self._jobs.values()]
        return {"running": states.count("running"), "waiting": states.count("queued"),
                "max_running": self.cfg.max_running, "max_waiting": self.cfg.max_waiting}

    # ---------------------------------------------------------------- files
    def _tmpdir(self) -> Path:
        with self._lock:
            if self._tmp is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="kakudai-web-")
            return Path(self._tmp.name)

    @property
    def tmp_path(self) -> Path | None:
        """The temporary folder for results, if one was made (for tests)."""
        return Path(self._tmp.name) if self._tmp is not None else None

    def close(self) -> None:
        """Cancel waiting jobs, let a running one finish, remove every temporary file."""
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            for j in list(self._jobs.values()):
                self._drop(j)
            if self._tmp is not None:
                self._tmp.cleanup()
                self._tmp = None

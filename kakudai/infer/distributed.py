"""Batch inference over a Ray cluster: ``kakudai upscale|denoise --executor ray``.

The driver (the ``kakudai`` process) plans the jobs exactly as the local path
does (:func:`kakudai.cli.batch.plan_outputs`), settles on its own the jobs
that need no model (a planning problem, an output that already exists), and
hands every other job, one image or video file each, to a pool of Ray actors.
Each actor builds the processor once (the same ``Upscaler`` or ``Denoiser``
the local run builds, weights loaded at start) with its own number of torch
threads, and runs the local per-file code path,
:func:`kakudai.cli.jobs.run_job`, with the run's typed
:class:`~kakudai.cli.jobs.JobOptions`, on one job at a time: the same read,
tiling, atomic write (hidden temporary file, renamed when complete), skip
check and one-line errors. What that path prints is captured in the actor
and printed by the driver, so the terminal shows one progress bar for the
whole run, the same error lines and the same summary as a local run.

Paths stay as the user gave them: each actor works in the driver's working
folder, so every node must see the inputs and the output folder at the same
paths (one machine, or a shared filesystem).

Ray is an optional dependency (``pip install "kakudai[ray]"``), imported only
here and only when ``--executor ray`` runs.
"""

from __future__ import annotations

import ctypes
import io
import os
import threading
import time
from contextlib import ExitStack, contextmanager, redirect_stderr
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator

from ..cli.errors import first_line

if TYPE_CHECKING:
    from ..cli.jobs import JobOptions

__all__ = ["MISSING_EXTRA", "ClusterOptions", "options_problem", "run_on_ray"]

MISSING_EXTRA = '--executor ray needs Ray, which is not installed: pip install "kakudai[ray]"'

# How long the driver waits, after Ctrl-C or SIGTERM, for the actors to drop the
# file they are on (they stop at the next Python bytecode, removing any temporary file).
STOP_GRACE_S = 60.0


@dataclass(frozen=True)
class ClusterOptions:
    """Where a batch runs. ``executor``: "local" (this process) or "ray". The rest are
    for Ray only: ``address`` of the cluster (None: RAY_ADDRESS, else a local Ray),
    ``workers`` (None: cluster CPUs / threads per worker), ``threads_per_worker`` (None: 1)."""

    executor: str = "local"
    address: str | None = None
    workers: int | None = None
    threads_per_worker: int | None = None


def options_problem(cluster: ClusterOptions, threads: int | None = None) -> str | None:
    """Why the cluster options cannot run, in one line (None: they can).

    With ``--executor local`` the cluster-only options are refused rather than
    silently ignored; with ``--executor ray``, Ray must be importable and ``threads``
    (the local process's torch threads) must not be set.
    """
    ray_only = [name for name, value in (("--address", cluster.address), ("--workers", cluster.workers),
                                         ("--threads-per-worker", cluster.threads_per_worker))
                if value is not None]
    if cluster.executor != "ray":
        return f"{ray_only[0]} needs --executor ray" if ray_only else None
    if cluster.workers is not None and cluster.workers < 1:
        return "--workers must be at least 1"
    if cluster.threads_per_worker is not None and cluster.threads_per_worker < 1:
        return "--threads-per-worker must be at least 1"
    if threads is not None:
        return "--threads sets the local process; with --executor ray use --threads-per-worker"
    try:
        import ray  # noqa: F401
    except ImportError:
        return MISSING_EXTRA
    return None


class _Worker:
    """One Ray actor: a processor built once, then one job at a time through the local code path.

    ``make_processor()`` builds the Upscaler (or denoise step) exactly as the
    local run does. A failure to build it is kept and reported for every job
    (as ``abort``, like a local weights error) instead of killing the actor.
    The actor is threaded (two threads) only so that :meth:`stop` can reach a
    running :meth:`run`.
    """

    def __init__(self, make_processor: Callable[[], Any], settings: tuple, options: "JobOptions", cwd: str,
                 threads: int, with_video: bool) -> None:
        import torch
        from PIL import Image

        from ..bench import retain_freed_memory
        from ..cli.jobs import video_backend

        torch.set_num_threads(threads)
        retain_freed_memory()  # as the local CLI does (docs/speed.md)
        Image.init()  # all format plugins now, not lazily inside a job (see run_upscale)
        self.settings = settings
        self.options = options  # the run's JobOptions
        self.running: int | None = None  # thread id of the run() in progress
        self.lock = threading.Lock()
        self.init_error: str | None = None
        self.up: Any = None
        self.video_fn = None
        try:
            if not os.path.isdir(cwd):
                raise RuntimeError(f"the driver's working folder {cwd} does not exist on this node "
                                   "(inputs and outputs must be on a filesystem every node shares)")
            os.chdir(cwd)  # job paths are relative to it, as the user typed them
            self.up = make_processor()
            scale = settings[0]
            if scale is not None and hasattr(self.up, "model_for"):
                self.up.model_for(self.up.plan(64, 64, scale)[0])  # load the weights once, now
            self.video_fn = video_backend() if with_video else None
        except Exception as e:  # noqa: BLE001  reported by run(), one line, for the driver to print
            self.init_error = first_line(e)

    def run(self, job: Any) -> tuple[str, list[str]]:
        """(status, printed lines) for one job; status as ``run_job``'s, or 'interrupted'."""
        from ..cli.jobs import run_job

        if self.init_error is not None:
            return "abort", [f"kakudai: error: {self.init_error}"]
        buf = io.StringIO()
        with self.lock:
            self.running = threading.get_ident()
        try:
            with redirect_stderr(buf):
                status = run_job(job, self.up, *self.settings, self.options, self.video_fn)
        except KeyboardInterrupt:  # from stop(): any temporary output was removed on the way out
            status = "interrupted"
        finally:
            with self.lock:
                self.running = None
        return status, [line for line in buf.getvalue().splitlines() if line.strip()]

    def stop(self) -> bool:
        """Raise KeyboardInterrupt in the running job, as Ctrl-C does in a local run.

        The exception lands at the job's next Python bytecode (between tiles,
        layers or frames); the write path's cleanup removes its temporary file.
        Returns whether a job was running.
        """
        with self.lock:
            if self.running is None:
                return False
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.running),
                                                       ctypes.py_object(KeyboardInterrupt))
            return True

    def ready(self) -> bool:
        return True


def _connect(address: str | None) -> bool:
    """Join the cluster at ``address`` (or start a local one); True if this call started Ray here."""
    import logging

    import ray

    if ray.is_initialized():  # a caller (a test, a notebook) already joined a cluster
        return False
    reason = _unreachable(address)
    if reason:
        raise ClusterError(f"cannot join the Ray cluster at {address} ({reason})")
    kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
    if address is None and not os.environ.get("RAY_ADDRESS"):
        kwargs["include_dashboard"] = False  # when Ray starts a local cluster for this run, no web UI
    try:
        ray.init(address=address, **kwargs)
    except Exception as e:  # noqa: BLE001  ConnectionError, ValueError, RuntimeError...: one line
        where = address or os.environ.get("RAY_ADDRESS") or "a local Ray"
        raise ClusterError(f"cannot join the Ray cluster at {where} ({first_line(e)})") from None
    return True


def _unreachable(address: str | None, timeout: float = 10.0) -> str | None:
    """Why nothing answers at a HOST:PORT address (None: something does, or it is not HOST:PORT).

    Ray retries a connection refused for many minutes; a mistyped address should fail at once.
    """
    import socket

    if not address or "://" in address or address == "auto" or ":" not in address:
        return None
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return None
    except ValueError:
        return f"{port!r} is not a port number"
    except OSError as e:
        return e.strerror or str(e) or type(e).__name__


class ClusterError(RuntimeError):
    """The Ray cluster cannot be joined (the message is the one line to print)."""


def run_on_ray(cluster: ClusterOptions, options: "JobOptions", jobs: list, make_processor: Callable[[], Any],
               settings: tuple, failed: int, desc: str, with_video: bool) -> int:
    """Run ``jobs`` on a Ray actor pool; prints and returns as the local batch loop does.

    ``options``: the run's :class:`~kakudai.cli.jobs.JobOptions` (each worker gets a copy).
    ``make_processor``: builds the processor in each actor (picklable).
    ``settings``: (scale, width, height). ``failed``: inputs already reported bad.
    """
    import sys

    import ray
    from tqdm import tqdm

    from ..cli.errors import error, say
    from ..cli.jobs import run_job, summary_line
    from ..cli.signals import Terminated, exit_code, sigterm_raises

    threads = cluster.threads_per_worker or 1
    t0 = time.perf_counter()
    bar = tqdm(total=len(jobs), unit="file", desc=desc, file=sys.stderr, disable=None, dynamic_ncols=True)
    interrupted: BaseException | None = None
    stopped_cleanly = True
    started = False
    count = {"done": 0, "skipped": 0, "failed": 0}

    def settle(status: str) -> None:
        if status in count:
            count[status] += 1
        bar.update(1)

    try:
        with ExitStack() as stack:
            stack.enter_context(sigterm_raises())
            # Jobs that need no model are settled here, with the local path's own messages.
            todo = []
            for job in jobs:
                if job.problem or (job.dst.exists() and not options.overwrite):
                    settle(run_job(job, None, *settings, options, None))
                else:
                    todo.append(job)
            if todo:
                try:
                    started = _connect(cluster.address)
                except ClusterError as e:
                    say(f"kakudai: error: {e}")
                    return 1
                # ray.init installs its own SIGTERM handler (exit without cleanup), and an exception
                # raised by a handler inside Ray's calls comes out as SystemError: so from here SIGTERM
                # is only noted, and the waiting loop raises Terminated.
                term = stack.enter_context(_sigterm_noted())
                cpus = int(ray.cluster_resources().get("CPU", 1))
                n = min(cluster.workers or max(1, cpus // threads), len(todo))
                bar.set_postfix_str(f"{n} workers x {threads} thread{'s' if threads > 1 else ''}", refresh=False)
                actor = ray.remote(_Worker).options(num_cpus=threads, max_concurrency=2, max_restarts=-1)
                pool = _Pool([actor.remote(make_processor, settings, options, os.getcwd(), threads, with_video)
                              for _ in range(n)])
                queue = list(reversed(todo))
                try:
                    while queue or pool.running:
                        pool.fill(queue)
                        if not pool.alive():
                            error("ray", "no Ray worker is left (they kept failing to restart)")
                            return 1
                        finished = pool.wait(timeout=0.25)
                        if term:
                            raise Terminated(term[0])
                        if finished is None:
                            continue
                        a, job, ref = finished
                        status = _collect(ref, job, error, say)
                        pool.release(a, crashed=status == "crashed")
                        if status == "abort":  # the model cannot run anywhere: as a local weights error
                            queue.clear()
                            for r in pool.running:
                                ray.cancel(r)
                            return 1
                        settle("failed" if status == "crashed" else status)
                except (KeyboardInterrupt, Terminated):
                    stopped_cleanly = _stop(pool, settle, error, say)
                    raise
    except (KeyboardInterrupt, Terminated) as e:
        interrupted = e
    finally:
        bar.close()
        if started:
            ray.shutdown()
        note = None
        if interrupted is not None:
            note = ("interrupted; no partial output left" if stopped_cleanly
                    else "interrupted; a worker did not stop in time and may have left a hidden .part file")
        say(summary_line(count["done"], count["skipped"], failed + count["failed"], time.perf_counter() - t0, note))
    if interrupted is not None:
        return exit_code(interrupted)
    return 1 if failed + count["failed"] else 0


@contextmanager
def _sigterm_noted() -> Iterator[list[int]]:
    """While inside: SIGTERM appends its number to the yielded list instead of ending the process."""
    import signal

    noted: list[int] = []
    old = signal.signal(signal.SIGTERM, lambda signum, _frame: noted.append(signum))
    try:
        yield noted
    finally:
        signal.signal(signal.SIGTERM, old)


class _Pool:
    """Ray actors with at most one job in flight each (so a slow file holds up no other).

    A worker that died is restarted by Ray; it gets no job until it answers
    ``ready()`` again, so the files queued behind a crash do not fail with it.
    """

    def __init__(self, actors: list) -> None:
        self.actors = list(actors)
        self.idle = list(actors)
        self.running: dict[Any, tuple[Any, Any]] = {}  # result ref -> (actor, job)
        self.warming: dict[Any, tuple[Any, int]] = {}  # ready() ref -> (actor, attempts)
        self.retry: list[tuple[float, Any, int]] = []  # (when, actor, attempts): ask ready() then

    def alive(self) -> bool:
        return bool(self.running or self.warming or self.retry or self.idle)

    def fill(self, queue: list) -> None:
        """Give each idle actor the next job from the end of ``queue``."""
        while self.idle and queue:
            a, job = self.idle.pop(), queue.pop()
            self.running[a.run.remote(job)] = (a, job)

    def wait(self, timeout: float) -> tuple[Any, Any, Any] | None:
        """(actor, job, result ref) of a finished job, or None after ``timeout``."""
        import ray

        now = time.monotonic()
        for item in [r for r in self.retry if r[0] <= now]:
            self.retry.remove(item)
            self.warming[item[1].ready.remote()] = (item[1], item[2])
        refs = list(self.running) + list(self.warming)
        if not refs:
            time.sleep(timeout)
            return None
        ready = ray.wait(refs, num_returns=1, timeout=timeout)[0]
        if not ready:
            return None
        if ready[0] in self.warming:
            a, attempts = self.warming.pop(ready[0])
            try:
                ray.get(ready[0])
                self.idle.append(a)
            except ray.exceptions.RayActorError:  # still restarting: ask again in a second, for 5 minutes
                if attempts < 300:
                    self.retry.append((time.monotonic() + 1.0, a, attempts + 1))
            return None
        a, job = self.running.pop(ready[0])
        return a, job, ready[0]

    def release(self, actor: Any, crashed: bool) -> None:
        """The actor's job is settled: it takes the next one, or first comes back from a crash."""
        if crashed:
            self.retry.append((time.monotonic(), actor, 0))
        else:
            self.idle.append(actor)


def _collect(ref: Any, job: Any, error: Callable, say: Callable) -> str:
    """A finished job's status, its captured lines printed; 'crashed' if its worker died."""
    import ray

    try:
        status, lines = ray.get(ref)
    except ray.exceptions.RayActorError as e:
        # Ray's own message runs to several sentences; where to look is what helps.
        error(job.src, f"the Ray worker processing it died (killed, out of memory or crashed: "
                       f"see the Ray logs; {type(e).__name__})")
        return "crashed"
    except ray.exceptions.RayError as e:
        error(job.src, first_line(e))
        return "failed"
    for line in lines:
        say(line)
    return status


def _stop(pool: _Pool, settle: Callable[[str], None], error: Callable, say: Callable) -> bool:
    """After Ctrl-C/SIGTERM: stop every actor's current job, wait for them; True if all stopped."""
    import ray

    running = pool.running
    for a in pool.actors:
        a.stop.remote()
    deadline = time.monotonic() + STOP_GRACE_S
    try:
        while running:
            ready, _ = ray.wait(list(running), num_returns=1, timeout=max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            _, job = running.pop(ready[0])
            status = _collect(ready[0], job, error, say)
            status = "failed" if status == "crashed" else status
            if status != "interrupted":  # it finished before the stop reached it
                settle(status)
    except (KeyboardInterrupt, Exception):  # noqa: BLE001  a second Ctrl-C: stop waiting
        pass
    clean = not running
    for a in pool.actors:
        ray.kill(a)
    return clean

"""``--executor ray``: the same outputs, skips, errors, summary and exit code as a local run.

One local Ray cluster (loopback, 2 CPUs) serves the whole module; the tests
that need it are skipped when Ray is not installed (``pip install "kakudai[ray]"``).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kakudai.cli import main
from kakudai.data.io import ImageData, read_image, write_image


def _smooth(rng, h: int, w: int, c: int) -> np.ndarray:
    """A photo-like (smooth) uint8 image, so automatic denoising sees a clean picture."""
    small = (rng.random((h // 4, w // 4, c)) * 255).astype(np.uint8)
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[c]
    return np.asarray(Image.fromarray(small.squeeze(), mode).resize((w, h), Image.BICUBIC))


@pytest.fixture()
def mixed(tmp_path: Path) -> Path:
    """RGB, RGBA, gray, 16-bit colour and JPEG inputs, one in a sub-folder, and a corrupt file."""
    rng = np.random.default_rng(0)
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    Image.fromarray(_smooth(rng, 40, 56, 3)).save(src / "rgb.png")
    Image.fromarray(_smooth(rng, 40, 56, 4), "RGBA").save(src / "rgba.png")
    Image.fromarray(_smooth(rng, 36, 52, 1)).save(src / "sub" / "gray.png")
    Image.fromarray(_smooth(rng, 40, 56, 3)).save(src / "photo.jpg", quality=80)
    deep = _smooth(rng, 40, 56, 3).astype(np.uint16) * 257 + rng.integers(0, 257, (40, 56, 3)).astype(np.uint16)
    write_image(src / "deep16.png", ImageData(pixels=deep))
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 4)
    return src


def _run(capsys, *argv: object) -> tuple[int, list[str]]:
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return rc, [line for line in err.splitlines() if line.strip()]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _summary(lines: list[str]) -> str:
    """The summary line without its time."""
    assert lines[-1].startswith("kakudai: ") and " done, " in lines[-1], lines
    return lines[-1].rsplit(" in ", 1)[0]


@pytest.fixture(scope="module")
def cluster():
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a test run reports nothing anywhere
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    # The node's address is loopback, two CPUs, no dashboard: the smallest cluster that runs two workers.
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             logging_level="ERROR")
    yield ray
    ray.shutdown()
    for s, h in handlers.items():  # ray.init replaces them in this (the pytest) process
        signal.signal(s, h)


def test_without_ray_the_executor_is_a_one_line_error(tmp_path, mixed, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    for command in ("upscale", "denoise"):
        rc, lines = _run(capsys, command, mixed, "-o", tmp_path / "out", "--executor", "ray")
        assert rc == 1 and len(lines) == 1, lines
        assert lines[0].startswith("kakudai: error: ") and 'pip install "kakudai[ray]"' in lines[0]
    assert not (tmp_path / "out").exists()
    rc, lines = _run(capsys, "upscale", mixed, "-o", tmp_path / "out", "--workers", "2")
    assert rc == 1 and lines == ["kakudai: error: --workers needs --executor ray"]


def test_an_address_where_nothing_listens_is_a_one_line_error(tmp_path, mixed, capsys):
    import socket

    ray = pytest.importorskip("ray")
    assert not ray.is_initialized()  # runs before the module's cluster starts
    with socket.socket() as s:  # a free port, closed again: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rc, lines = _run(capsys, "upscale", mixed, "-o", tmp_path / "out", "--executor", "ray",
                     "--address", f"127.0.0.1:{port}")
    assert rc == 1
    assert lines[0] == f"kakudai: error: cannot join the Ray cluster at 127.0.0.1:{port} (Connection refused)"
    assert not list((tmp_path / "out").iterdir())


# Torch's float results depend on its thread count (summation order), which can show in the
# last bit of a 16-bit output: each comparison runs both sides with one thread.
@pytest.mark.slow
def test_same_bytes_errors_summary_and_exit_code_as_local(tmp_path, mixed, capsys, cluster):
    rc_local, local = _run(capsys, "upscale", mixed, "-r", "-o", tmp_path / "local", "--threads", "1")
    rc_ray, remote = _run(capsys, "upscale", mixed, "-r", "-o", tmp_path / "ray", "--executor", "ray",
                          "--workers", "2", "--threads-per-worker", "1")
    assert rc_local == rc_ray == 1  # the corrupt file fails the run, and only it
    assert _summary(local) == _summary(remote) == "kakudai: 5 done, 0 skipped, 1 failed"
    errors = [line for line in remote if line.startswith("kakudai: error: ")]
    assert errors == [line for line in local if line.startswith("kakudai: error: ")]
    assert len(errors) == 1 and errors[0].startswith(f"kakudai: error: {mixed / 'broken.png'}: ")
    outputs = _files(tmp_path / "ray")
    assert sorted(outputs) == ["deep16.png", "photo.jpg", "rgb.png", "rgba.png", "sub/gray.png"]
    assert outputs == _files(tmp_path / "local")  # byte for byte, metadata and bit depth included
    with Image.open(tmp_path / "ray" / "rgba.png") as im:
        assert im.mode == "RGBA" and im.size == (112, 80)
    assert read_image(tmp_path / "ray" / "deep16.png").pixels.dtype == np.uint16


@pytest.mark.slow
def test_restart_skips_finished_outputs(tmp_path, mixed, capsys, cluster):
    (mixed / "broken.png").unlink()
    out = tmp_path / "out"
    options = ["--model", "espcn", "--threads"]
    rc, _ = _run(capsys, "upscale", mixed, "-o", out, *options, "1")
    assert rc == 0
    first = _files(out)
    # A run stopped part-way leaves finished outputs and nothing else: remove two, keep two.
    (out / "rgb.png").unlink()
    (out / "photo.jpg").unlink()
    kept = {p: (out / p).stat().st_mtime_ns for p in ("deep16.png", "rgba.png")}
    rc, lines = _run(capsys, "upscale", mixed, "-o", out, *options[:2], "--executor", "ray", "--workers", "1")
    assert rc == 0 and _summary(lines) == "kakudai: 2 done, 2 skipped, 0 failed"
    skips = sorted(line for line in lines if line.startswith("kakudai: skipped: "))
    assert skips == [f"kakudai: skipped: {mixed / n}: {out / n} exists (use --overwrite to replace it)"
                     for n in ("deep16.png", "rgba.png")]
    assert _files(out) == first
    assert {p: (out / p).stat().st_mtime_ns for p in kept} == kept  # not rewritten


@pytest.mark.slow
def test_denoise_same_bytes_as_local(tmp_path, mixed, capsys, cluster):
    (mixed / "broken.png").unlink()
    args = ["denoise", mixed, "--sigma", "15"]
    rc_local, local = _run(capsys, *args, "-o", tmp_path / "local", "--threads", "1")
    rc_ray, remote = _run(capsys, *args, "-o", tmp_path / "ray", "--executor", "ray", "--workers", "1")
    assert rc_local == rc_ray == 0 and _summary(local) == _summary(remote) == "kakudai: 4 done, 0 skipped, 0 failed"
    outputs = _files(tmp_path / "ray")
    assert "photo.png" in outputs and outputs == _files(tmp_path / "local")


def test_an_unloadable_model_stops_the_run_once(tmp_path, mixed, capsys):
    """The weights are loaded once by the command before any cluster starts: one line, exit 1."""
    pytest.importorskip("ray")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not weights")
    rc, lines = _run(capsys, "upscale", mixed, "-o", tmp_path / "out", "--model", bad, "--executor", "ray")
    assert rc == 1 and len(lines) == 1 and lines[0].startswith("kakudai: error: "), lines


def test_a_stopped_worker_leaves_no_partial_output(tmp_path):
    """Ctrl-C on the driver stops each worker's current file as Ctrl-C stops a local run:
    the job ends with KeyboardInterrupt and no output or temporary file is left.
    (The worker class is driven in this process: stop() is the same call either way.)"""
    import functools

    from kakudai.api import Upscaler
    from kakudai.cli import build_parser
    from kakudai.cli.jobs import Job
    from kakudai.cli.upscale import batch_options
    from kakudai.infer.distributed import _Worker

    rng = np.random.default_rng(1)
    Image.fromarray(_smooth(rng, 256, 320, 3)).save(tmp_path / "big.png")
    args = build_parser().parse_args(["upscale", str(tmp_path / "big.png"), "-o", str(tmp_path / "out"),
                                      "--model", "ksr", "--denoise", "off"])
    make = functools.partial(Upscaler, "ksr", tile=24, denoise=None)  # many small tiles: a long job
    worker = _Worker(make, (2.0, None, None), batch_options(args).job, str(Path.cwd()), threads=1, with_video=False)
    assert worker.init_error is None
    (tmp_path / "out").mkdir()
    result: list = []
    job = Job(tmp_path / "big.png", tmp_path / "out" / "big.png")
    t = threading.Thread(target=lambda: result.append(worker.run(job)))
    t.start()
    deadline = time.monotonic() + 60
    while worker.running is None and t.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    assert worker.stop(), "the job finished before it could be stopped"
    t.join(60)
    assert result and result[0][0] == "interrupted", result
    assert list((tmp_path / "out").iterdir()) == []
    assert not worker.stop()  # nothing running any more

"""The web server's HTTP API through Starlette's TestClient (no real network).

Every refusal is checked for its status and JSON body, and followed by a
successful upscale: a bad request must never take the server down.
"""

from __future__ import annotations

import io
import struct
import threading
import time
import zlib

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette", reason="the web extra is not installed: pip install '.[web]'")
pytest.importorskip("multipart", reason="python-multipart is not installed: pip install '.[web]'")
pytest.importorskip("httpx", reason="httpx is not installed: pip install '.[test]'")
from starlette.testclient import TestClient  # noqa: E402

import kakudai  # noqa: E402
from kakudai.web.jobs import Rendered, render_png  # noqa: E402
from kakudai.web.options import ApiError, WebConfig, model_choices, parse_request  # noqa: E402
from kakudai.web.server import create_app  # noqa: E402

BASE = "http://127.0.0.1"


def png_bytes(w: int = 20, h: int = 16, seed: int = 0, mode: str = "RGB") -> bytes:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).convert(mode).save(buf, format="PNG")
    return buf.getvalue()


def header_only_png(w: int, h: int) -> bytes:
    """A ~70-byte PNG whose header claims w x h pixels (decoding it would be costly or fail)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


@pytest.fixture()
def client():
    app = create_app(WebConfig(max_upload_bytes=200_000, max_pixels=100_000, max_output_pixels=1_000_000))
    with TestClient(app, base_url=BASE) as c:
        yield c


def post(c: TestClient, data: bytes, url: str = "/api/upscale", filename: str = "x.png", **fields):
    return c.post(url, files={"image": (filename, data, "image/png")}, data={k: str(v) for k, v in fields.items()})


def assert_error(r, status: int, *words: str) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    msg = r.json()["error"]
    for w in words:
        assert w in msg, msg


def assert_still_serving(c: TestClient) -> None:
    r = post(c, png_bytes(8, 6), scale=2, model="bicubic")
    assert r.status_code == 200, r.text
    assert Image.open(io.BytesIO(r.content)).size == (16, 12)


# ---------------------------------------------------------------------- the page and /api/models
def test_page_and_models(client):
    r = client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert 'id="compare"' in r.text and "/static/app.js" in r.text
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert client.get("/static/app.js").status_code == 200
    info = client.get("/api/models").json()
    names = [m["name"] for m in info["models"]]
    fast = kakudai.zoo.ZOO["ksr-fast"].present()
    expected = ["default", "fast", "bicubic"] if fast else ["default", "bicubic"]
    assert names[:len(expected)] == expected
    assert info["limits"]["max_pixels"] == 100_000 and "PNG" in info["limits"]["formats"]
    assert info["denoise"]["levels"] == [0, 1, 2, 3]
    # Only models that can upscale are offered: every architecture without shipped weights
    # is absent, and so is every restorer (the denoise option uses those).
    shipped = {e.name for e in kakudai.zoo.shipped()}
    for name in set(kakudai.list_models()) - shipped - {"bicubic"}:
        assert name not in names
    restorers = {e.name for e in kakudai.zoo.shipped() if e.task != "upscale"}
    assert restorers and not restorers & set(names)
    assert {e.name for e in kakudai.zoo.shipped("upscale")} <= set(names)


def test_static_paths_do_not_escape(client):
    for url in ("/static/../server.py", "/static/%2e%2e/server.py", "/static/..%2fserver.py"):
        assert client.get(url).status_code == 404


# ---------------------------------------------------------------------- success
@pytest.mark.parametrize("scale,size", [(2, (40, 32)), (3, (60, 48)), (1.5, (30, 24)), (2.5, (50, 40))])
def test_upscale_matches_the_python_api(client, scale, size):
    data = png_bytes(20, 16, seed=1)
    r = post(client, data, scale=scale, model="bicubic")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert r.headers["x-kakudai-size"] == f"{size[0]}x{size[1]}"
    out = Image.open(io.BytesIO(r.content))
    assert out.size == size
    # The server adds nothing of its own: same pixels as calling the API directly.
    ref = kakudai.upscale(Image.open(io.BytesIO(data)), scale=scale, model="bicubic")
    np.testing.assert_array_equal(np.asarray(out), np.asarray(ref))


def test_default_model_and_gray_image(client):
    r = post(client, png_bytes(12, 10, mode="L"), scale=2)  # no model field: default
    assert r.status_code == 200, r.text
    assert Image.open(io.BytesIO(r.content)).size == (24, 20)
    assert r.headers["x-kakudai-model"] == kakudai.zoo.resolve("default", 2).name


def test_accepts_jpeg(client):
    buf = io.BytesIO()
    Image.open(io.BytesIO(png_bytes(16, 16))).save(buf, format="JPEG")
    r = post(client, buf.getvalue(), filename="a.jpg", scale=2, model="bicubic")
    assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (32, 32)


# ---------------------------------------------------------------------- bad files
def test_bad_files(client):
    assert_error(post(client, b"this is not an image at all" * 10), 415, "not an image")
    assert_still_serving(client)
    whole = png_bytes(40, 40, seed=3)
    assert_error(post(client, whole[: len(whole) // 2]), 400, "cannot decode")  # truncated
    assert_still_serving(client)
    assert_error(post(client, b""), 400, "empty")
    assert_still_serving(client)
    # A format outside the list (PPM), even though Pillow reads it.
    buf = io.BytesIO()
    Image.open(io.BytesIO(png_bytes(8, 8))).save(buf, format="PPM")
    assert_error(post(client, buf.getvalue()), 415)
    assert_still_serving(client)
    r = client.post("/api/upscale", data={"scale": "2"})  # no file at all
    assert_error(r, 400, "image")
    r = client.post("/api/upscale", content=b"--x\r\ngarbage",
                    headers={"content-type": "multipart/form-data; boundary=x"})
    assert r.status_code == 400 and "error" in r.json()
    assert_still_serving(client)


# ---------------------------------------------------------------------- sizes
def test_over_size_upload(client):
    big = np.random.default_rng(0).integers(0, 256, size=300_000, dtype=np.uint8).tobytes()
    assert_error(post(client, big), 413, "limit")
    assert_still_serving(client)


def test_over_size_chunked_upload_is_cut_off(client):
    # No Content-Length: the limit must hold while the body streams in.
    body = (b"--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.png\"\r\n"
            b"Content-Type: image/png\r\n\r\n" + b"\0" * 400_000 + b"\r\n--b--\r\n")
    sent = []

    def chunks():
        for i in range(0, len(body), 16_384):
            sent.append(i)
            yield body[i:i + 16_384]
    r = client.post("/api/upscale", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"})
    assert_error(r, 413, "limit")
    assert_still_serving(client)


def test_over_pixel_image_refused_from_its_header(client):
    tiny_file = header_only_png(5000, 5000)  # 25 MP claimed in under 100 bytes
    assert len(tiny_file) < 100
    assert_error(post(client, tiny_file), 413, "5000x5000")
    assert_still_serving(client)
    flat = io.BytesIO()
    Image.new("RGB", (400, 300), (90, 120, 30)).save(flat, format="PNG")  # a real one, 120k px
    assert_error(post(client, flat.getvalue()), 413, "limit is 100000")
    assert_still_serving(client)
    # Within the input limit, but the result would be too large.
    flat = io.BytesIO()
    Image.new("RGB", (300, 300), (90, 120, 30)).save(flat, format="PNG")
    assert_error(post(client, flat.getvalue(), scale=8, model="bicubic"), 413, "result would be")
    assert_still_serving(client)


# ---------------------------------------------------------------------- options
def test_unknown_model(client):
    assert_error(post(client, png_bytes(), model="no-such-model"), 400, "unknown model", "bicubic")
    assert_still_serving(client)
    # A path is not a model: load_model would read a file, the server must not. Nor is an
    # architecture without shipped weights (it would run untrained).
    unshipped = sorted(set(kakudai.list_models()) - {e.name for e in kakudai.zoo.shipped()} - {"bicubic"})
    restorers = sorted(e.name for e in kakudai.zoo.shipped() if e.task != "upscale")
    for path in ("/etc/passwd", "../kakudai/weights/x.safetensors", *unshipped[:1], *restorers):
        assert_error(post(client, png_bytes(), model=path), 400, "unknown model")
    assert_still_serving(client)


@pytest.mark.parametrize("scale", ["abc", "0.5", "100", "nan", "inf", "-2"])
def test_bad_scale(client, scale):
    assert_error(post(client, png_bytes(), scale=scale, model="bicubic"), 400, "scale")
    assert_still_serving(client)


def test_bad_denoise_is_refused_cleanly(client):
    assert_error(post(client, png_bytes(), denoise=7), 400, "denoise")
    assert_still_serving(client)
    assert post(client, png_bytes(), scale=2, denoise="none").status_code == 200


def test_target_size_and_progress():
    seen = []

    def watched(data, req, cfg, upscalers, progress=None) -> Rendered:
        def spy(done: int, total: int) -> None:
            seen.append((done, total))
            progress(done, total)
        return render_png(data, req, cfg, upscalers, spy)

    with TestClient(create_app(WebConfig(tile=8), work=watched), base_url=BASE) as c:
        r = post(c, png_bytes(20, 16), width=50, model="bicubic")
        assert r.status_code == 200, r.text
        assert Image.open(io.BytesIO(r.content)).size == (50, 40)
        r = post(c, png_bytes(20, 16), width=100, height=40, model="bicubic")  # fits the box
        assert Image.open(io.BytesIO(r.content)).size == (50, 40)
        assert_error(post(c, png_bytes(20, 16), width=50, scale=2), 400, "either")
    # The API's tile callback reaches the job (counts are the API's own).
    assert seen and all(d >= 1 and t >= 1 for d, t in seen), seen


def test_requests_map_to_the_upscaler_settings():
    cfg = WebConfig()
    req = parse_request({"model": "bicubic", "width": "300", "denoise": "2"}, cfg, model_choices())
    assert req.upscaler_key() == ("bicubic", 2, "auto")
    assert req.size_kwargs() == {"scale": None, "width": 300, "height": None}
    req = parse_request({"model": "default", "scale": "2.5"}, cfg, model_choices())
    assert req.upscaler_key() == ("default", "auto", "auto")  # the defaults
    assert req.size_kwargs() == {"scale": 2.5, "width": None, "height": None}
    req = parse_request({"model": "default", "scale": "2", "denoise": "none", "style": "Illustration"}, cfg,
                        model_choices())
    assert req.upscaler_key() == ("default", None, "illustration")  # off, said explicitly
    with pytest.raises(ApiError, match="style"):
        parse_request({"model": "default", "style": "anime"}, cfg, model_choices())


def test_models_are_kept_between_requests(monkeypatch):
    """A second request with the same settings loads no model; settings beyond
    ``kept_upscalers`` push out the least recently used."""
    import kakudai.api

    loads = []
    real = kakudai.api.load_model

    def counting(*args, **kwargs):
        loads.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(kakudai.api, "load_model", counting)
    app = create_app(WebConfig(kept_upscalers=2))
    with TestClient(app, base_url=BASE) as c:
        for _ in range(3):
            r = post(c, png_bytes(12, 10), scale=2, model="default", denoise="none", style="photo")
            assert r.status_code == 200, r.text
        assert len(loads) == 1, loads
        # Two more settings: the first is dropped ...
        post(c, png_bytes(12, 10), scale=2, model="default", denoise="none", style="illustration")
        post(c, png_bytes(12, 10), scale=2, model="bicubic", denoise="none", style="photo")
        assert len(app.state.jobs.upscalers) == 2
        n = len(loads)
        post(c, png_bytes(12, 10), scale=2, model="default", denoise="none", style="photo")
        assert len(loads) == n + 1  # ... and loaded again when asked for


# ---------------------------------------------------------------------- jobs, queue, limits on work
def test_job_api_and_temp_files_removed():
    app = create_app(WebConfig())
    with TestClient(app, base_url=BASE) as c:
        r = post(c, png_bytes(10, 8), url="/api/jobs", scale=3, model="bicubic")
        assert r.status_code == 202, r.text
        job = r.json()
        for _ in range(200):
            st = c.get(job["status_url"]).json()
            if st["state"] in ("done", "error"):
                break
            time.sleep(0.02)
        assert st["state"] == "done" and (st["width"], st["height"]) == (30, 24)
        tmp = app.state.jobs.tmp_path
        assert tmp is not None and len(list(tmp.iterdir())) == 1
        res = c.get(job["result_url"])
        assert res.status_code == 200 and Image.open(io.BytesIO(res.content)).size == (30, 24)
        assert c.delete(job["status_url"]).status_code == 204
        assert list(tmp.iterdir()) == []
        assert_error(c.get(job["status_url"]), 404, "no such job")
        assert_error(c.get("/api/jobs/../../etc/passwd/result"), 404)
        # A result left behind is removed when the server stops.
        r = post(c, png_bytes(10, 8), url="/api/jobs", scale=2, model="bicubic")
        for _ in range(200):
            if c.get(r.json()["status_url"]).json()["state"] == "done":
                break
            time.sleep(0.02)
        assert len(list(tmp.iterdir())) == 1
    assert not tmp.exists()


def test_bounded_queue_runs_off_the_event_loop():
    release = threading.Event()
    threads: list[str] = []

    def slow_work(data, req, cfg, upscalers, progress=None) -> Rendered:
        threads.append(threading.current_thread().name)
        assert release.wait(10)
        return render_png(data, req, cfg, upscalers, progress)

    app = create_app(WebConfig(max_running=1, max_waiting=1), work=slow_work)
    with TestClient(app, base_url=BASE) as c:
        a = post(c, png_bytes(), url="/api/jobs", scale=2, model="bicubic").json()
        b = post(c, png_bytes(), url="/api/jobs", scale=2, model="bicubic").json()
        for _ in range(200):  # wait until the first one has started
            if c.get(a["status_url"]).json()["state"] == "running":
                break
            time.sleep(0.01)
        # While a job blocks its worker thread the event loop still answers.
        assert c.get("/api/models").json()["jobs"] == {"running": 1, "waiting": 1, "max_running": 1,
                                                      "max_waiting": 1}
        assert c.get(b["status_url"]).json()["position"] == 1
        r = post(c, png_bytes(), url="/api/jobs", scale=2, model="bicubic")
        assert_error(r, 503, "busy")
        assert r.headers["retry-after"]
        assert_error(post(c, png_bytes(), scale=2, model="bicubic"), 503, "busy")  # the simple call too
        release.set()
        for j in (a, b):
            for _ in range(300):
                st = c.get(j["status_url"]).json()
                if st["state"] == "done":
                    break
                time.sleep(0.01)
            assert st["state"] == "done"
        assert all(t.startswith("kakudai-job") for t in threads) and len(threads) == 2
        assert_still_serving(c)


def test_cancel_queued_job():
    release = threading.Event()

    def slow_work(data, req, cfg, upscalers, progress=None) -> Rendered:
        release.wait(10)
        return render_png(data, req, cfg, upscalers, progress)

    app = create_app(WebConfig(max_running=1, max_waiting=2), work=slow_work)
    with TestClient(app, base_url=BASE) as c:
        a = post(c, png_bytes(), url="/api/jobs", scale=2, model="bicubic").json()
        b = post(c, png_bytes(), url="/api/jobs", scale=2, model="bicubic").json()
        assert c.delete(b["status_url"]).status_code == 204
        assert c.get(b["status_url"]).status_code == 404
        release.set()
        for _ in range(300):
            if c.get(a["status_url"]).json()["state"] == "done":
                break
            time.sleep(0.01)
        assert c.get("/api/models").json()["jobs"]["waiting"] == 0


def test_internal_error_is_json_and_server_survives():
    calls = []

    def flaky(data, req, cfg, upscalers, progress=None) -> Rendered:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("simulated crash")
        return render_png(data, req, cfg, upscalers, progress)

    with TestClient(create_app(WebConfig(), work=flaky), base_url=BASE) as c:
        assert_error(post(c, png_bytes(), scale=2, model="bicubic"), 500, "simulated crash")
        assert_still_serving(c)


# ---------------------------------------------------------------------- cross-site protection
def test_cross_origin_post_and_foreign_host_refused():
    with TestClient(create_app(WebConfig(allowed_hosts=("127.0.0.1", "localhost"))), base_url=BASE) as c:
        r = c.post("/api/upscale", files={"image": ("x.png", png_bytes(), "image/png")},
                   headers={"origin": "http://evil.example"})
        assert_error(r, 403, "cross-origin")
        r = c.post("/api/upscale", files={"image": ("x.png", png_bytes(), "image/png")},
                   headers={"origin": BASE})
        assert r.status_code == 200
        assert_error(c.get("/api/models", headers={"host": "evil.example:8000"}), 400, "local")
        assert c.get("/api/models", headers={"host": "localhost:8000"}).status_code == 200


# ---------------------------------------------------------------------- the command
def test_cli_serve_port_in_use(capsys):
    import socket

    from kakudai.cli import main
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"kakudai: error: 127.0.0.1:{port}: "), err


@pytest.mark.parametrize("args,what", [(["--port", "80000"], "--port 80000"), (["--port", "-1"], "--port -1"),
                                       # TEST-NET-3: never an address of this machine, so never bound
                                       (["--host", "203.0.113.7", "--port", "0"], "203.0.113.7:0")])
def test_cli_serve_cannot_listen_is_one_line(capsys, args, what):
    from kakudai.cli import main

    assert main(["serve", *args]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"kakudai: error: {what}: "), err


@pytest.mark.slow
def test_cli_serve_answers_and_stops_on_ctrl_c(tmp_path):
    import json
    import signal
    import subprocess
    import sys
    import urllib.request
    from pathlib import Path

    from kakudai.web.server import bind
    sock = bind("127.0.0.1", 0)  # a free port, released just before the server takes it
    port = sock.getsockname()[1]
    sock.close()
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-m", "kakudai", "serve", "--port", str(port)], cwd=repo,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/models", timeout=5) as r:
                    info = json.load(r)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode()
                time.sleep(0.3)
        assert info["models"][0]["name"] == "default"
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out.decode()
    assert b"Traceback" not in out and b"serving on http://127.0.0.1:" in out

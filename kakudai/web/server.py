"""``kakudai serve``: a local web page over :class:`kakudai.api.Upscaler` (Starlette + uvicorn).

HTTP API (errors are 4xx/5xx with a JSON body ``{"error": "..."}``)::

    GET    /                      the page (static/index.html)
    GET    /api/models            models, scales, options and limits the page offers
    POST   /api/upscale           multipart: image, scale | width/height, model, denoise -> PNG
    POST   /api/jobs              same form -> 202 {"id", ...}; runs in the background
    GET    /api/jobs/{id}         {"state", "position", "progress", "elapsed", ...}
    GET    /api/jobs/{id}/result  the PNG once state is "done"
    DELETE /api/jobs/{id}         cancel a queued job or free a result
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import sys
from pathlib import Path
from typing import Any, AsyncIterator
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .jobs import Busy, Job, JobQueue, render_png
from .options import (ApiError, WebConfig, check_image_header, model_choices, models_payload, output_size,
                      parse_request)

__all__ = ["create_app", "serve", "WebConfig"]

STATIC = Path(__file__).resolve().parent / "static"
MULTIPART_SLACK = 64 * 1024  # boundaries, part headers and the small text fields
log = logging.getLogger("kakudai.web")

# The page loads nothing from elsewhere and runs no inline script.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; "
                               "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
}


def _json_error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise ApiError(413, f"the upload is over the limit of {limit - MULTIPART_SLACK} bytes")
        except ValueError:
            raise ApiError(400, "bad Content-Length") from None
    chunks, n = [], 0
    async for chunk in request.stream():  # chunked uploads have no Content-Length
        n += len(chunk)
        if n > limit:
            raise ApiError(413, f"the upload is over the limit of {limit - MULTIPART_SLACK} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _check_origin(request: Request) -> None:
    """Refuse cross-site form posts: another site must not spend this machine's CPU."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
        raise ApiError(403, "cross-origin requests are not accepted")


class _App:
    """The routes, bound to one config and one job queue."""

    def __init__(self, cfg: WebConfig, work: Any):
        self.cfg = cfg
        self.jobs = JobQueue(cfg, work)

    async def _accept(self, request: Request, keep_file: bool) -> Job:
        """Read and check the upload and fields, then queue the job (no decoding here)."""
        _check_origin(request)
        body = await _read_body(request, self.cfg.max_upload_bytes + MULTIPART_SLACK)

        async def replay() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        form_request = Request(request.scope, replay)
        try:
            form = await form_request.form(max_files=1, max_fields=8, max_part_size=1024)
        except HTTPException as e:  # malformed multipart
            raise ApiError(400, f"bad form data: {e.detail}") from None
        try:
            upload = form.get("image")
            if upload is None or isinstance(upload, str):
                raise ApiError(400, "no file in the multipart field 'image'")
            data = await upload.read()
            req = parse_request(form, self.cfg, model_choices())
        finally:
            await form.close()  # spooled upload files
        _fmt, w, h = check_image_header(data, self.cfg)
        ow, oh = output_size(w, h, req)
        if ow * oh > self.cfg.max_output_pixels:
            raise ApiError(413, f"the result would be {ow}x{oh} = {ow * oh} pixels; "
                                f"the limit is {self.cfg.max_output_pixels}")
        try:
            return self.jobs.submit(data, req, (w, h), keep_file)
        except Busy as e:
            raise ApiError(503, f"server busy: {e}") from None

    # ------------------------------------------------------------------ routes
    async def index(self, request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def models(self, request: Request) -> Response:
        body = models_payload(self.cfg, model_choices())
        body["jobs"] = self.jobs.counts()
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    async def upscale(self, request: Request) -> Response:
        """The simple call: wait for the job and answer with the PNG."""
        job = await self._accept(request, keep_file=False)
        try:
            await asyncio.wrap_future(job.future)  # type: ignore[arg-type]
            if job.error is not None:
                raise job.error
            r = job.result
            assert r is not None
            return Response(r.png, media_type="image/png", headers={
                "Cache-Control": "no-store", "Content-Disposition": 'inline; filename="upscaled.png"',
                "X-Kakudai-Model": r.model, "X-Kakudai-Size": f"{r.width}x{r.height}",
                "X-Kakudai-Seconds": f"{r.seconds:.3f}"})
        finally:
            self.jobs.forget(job)  # also when the client went away mid-way

    async def create_job(self, request: Request) -> Response:
        job = await self._accept(request, keep_file=True)
        body = job.status(self.jobs.position(job))
        body.update(status_url=f"/api/jobs/{job.id}", result_url=f"/api/jobs/{job.id}/result")
        return JSONResponse(body, status_code=202, headers={"Location": body["status_url"]})

    def _job(self, request: Request) -> Job:
        job = self.jobs.get(request.path_params["job_id"])
        if job is None:
            raise ApiError(404, "no such job (finished results are kept for a limited time)")
        return job

    async def job_status(self, request: Request) -> Response:
        job = self._job(request)
        return JSONResponse(job.status(self.jobs.position(job)), headers={"Cache-Control": "no-store"})

    async def job_result(self, request: Request) -> Response:
        job = self._job(request)
        if job.state == "error" and job.error is not None:
            return _json_error(job.error.status, job.error.message)
        if job.state != "done":
            return _json_error(409, f"the job is {job.state}, not done")
        r = job.result
        assert r is not None
        return Response(self.jobs.read_result(job), media_type="image/png", headers={
            "Cache-Control": "no-store", "X-Kakudai-Model": r.model, "X-Kakudai-Size": f"{r.width}x{r.height}",
            "X-Kakudai-Seconds": f"{r.seconds:.3f}"})

    async def delete_job(self, request: Request) -> Response:
        self.jobs.forget(self._job(request))
        return Response(status_code=204)


def create_app(config: WebConfig | None = None, work: Any = render_png) -> Starlette:
    """The ASGI app. ``work`` renders one job (:func:`kakudai.web.jobs.render_png`; tests may wrap it)."""
    cfg = config or WebConfig()
    routes_obj = _App(cfg, work)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        routes_obj.jobs.close()

    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        headers = {"Retry-After": "5"} if exc.status == 503 else None
        return _json_error(exc.status, exc.message, headers)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _json_error(exc.status_code, str(exc.detail), dict(exc.headers or {}))

    async def on_crash(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s", request.url.path)
        return _json_error(500, f"internal error: {type(exc).__name__}")

    app = Starlette(
        routes=[
            Route("/", routes_obj.index),
            Route("/api/models", routes_obj.models),
            Route("/api/upscale", routes_obj.upscale, methods=["POST"]),
            Route("/api/jobs", routes_obj.create_job, methods=["POST"]),
            Route("/api/jobs/{job_id:str}", routes_obj.job_status, methods=["GET"]),
            Route("/api/jobs/{job_id:str}", routes_obj.delete_job, methods=["DELETE"]),
            Route("/api/jobs/{job_id:str}/result", routes_obj.job_result),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        exception_handlers={ApiError: on_api_error, HTTPException: on_http_error, Exception: on_crash},
        lifespan=lifespan,
    )
    app.state.jobs = routes_obj.jobs
    app.state.config = cfg

    app.add_middleware(_Guard, allowed_hosts=cfg.allowed_hosts)
    return app


class _Guard:
    """Pure ASGI middleware: refuse unknown Host headers (DNS rebinding) with JSON, and
    add :data:`SECURITY_HEADERS` to every response."""

    def __init__(self, app: Any, allowed_hosts: tuple[str, ...] | None):
        self.app = app
        self.allowed = None if allowed_hosts is None else {h.lower() for h in allowed_hosts}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.allowed is not None:
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1").lower()
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if name not in self.allowed:
                return await _json_error(400, "this server answers to local addresses only")(scope, receive, send)

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                have = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()
                         if k.lower().encode() not in have]
                message = {**message, "headers": list(message.get("headers", [])) + extra}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: any free port). Raises OSError."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(64)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def make_server(config: WebConfig | None = None, log_level: str = "info") -> Any:
    """A uvicorn server for the app (run it with ``server.run(sockets=[bind(...)])``)."""
    import uvicorn

    app = create_app(config)
    return uvicorn.Server(uvicorn.Config(app, log_level=log_level, timeout_graceful_shutdown=5,
                                         server_header=False))


def serve(host: str = "127.0.0.1", port: int = 8000, config: WebConfig | None = None) -> None:
    """Serve the page until interrupted. Raises OSError if ``host:port`` cannot be bound."""
    cfg = config or WebConfig()
    if _is_loopback(host) and cfg.allowed_hosts is None:
        # Only local names in the Host header: a web page elsewhere cannot reach this
        # server through DNS rebinding.
        from dataclasses import replace
        cfg = replace(cfg, allowed_hosts=("127.0.0.1", "localhost", "::1", "[::1]", host))
    if not log.handlers:  # one line per finished job, beside uvicorn's access log
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    sock = bind(host, port)
    if not _is_loopback(host):  # warned only once listening: an address that fails is just the error
        print(f"kakudai: warning: serving on {host}, reachable from other machines; "
              "there is no authentication", file=sys.stderr)
    shown = f"[{host}]" if ":" in host else host
    print(f"kakudai: serving on http://{shown}:{sock.getsockname()[1]}/  (Ctrl+C to stop)", file=sys.stderr)
    try:
        make_server(cfg).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl+C after its clean shutdown
        pass
    finally:
        sock.close()

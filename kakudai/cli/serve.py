"""``kakudai serve``: the local web page (:mod:`kakudai.web.server`, the ``web`` extra)."""

from __future__ import annotations

import argparse

from .errors import error, fail

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    w = sub.add_parser("serve", help="a local web page: drop an image, compare, download")
    w.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this computer only)")
    w.add_argument("--port", type=int, default=8000)
    w.add_argument("--max-upload-mb", type=float, default=None, help="largest accepted upload in MiB (default 32)")
    w.add_argument("--max-pixels", type=int, default=None,
                   help="largest accepted input, width*height (default 16000000)")
    w.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        return error(f"--port {args.port}", "not a TCP port number (0-65535; 0 picks a free one)")
    try:
        from ..web.server import WebConfig, serve
    except ImportError as e:
        return error("serve", f"the web page needs the web extra: pip install 'kakudai[web]' ({e.name} is missing)")
    limits = {"max_upload_bytes": None if args.max_upload_mb is None else int(args.max_upload_mb * 2**20),
              "max_pixels": args.max_pixels}
    cfg = WebConfig(**{k: v for k, v in limits.items() if v is not None})
    try:
        serve(args.host, args.port, cfg)
    except OSError as e:
        return fail(e, f"{args.host}:{args.port}")
    return 0

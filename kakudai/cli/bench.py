"""``kakudai bench``: time whole upscale calls, GFLOP/s against the measured peak (:mod:`kakudai.bench`)."""

from __future__ import annotations

import argparse

from .errors import error, fail

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("bench", help="time whole upscale calls; GFLOP/s against the measured peak")
    b.add_argument("--model", nargs="+", default=None, metavar="NAME",
                   help="model names or .safetensors files (default: bicubic ksr ksr-fast); "
                        "architectures without shipped weights run with random weights")
    b.add_argument("--scale", type=float, default=3)
    b.add_argument("--size", default="640x360", metavar="WxH", help="input frame size (default 640x360)")
    b.add_argument("--repeat", type=int, default=5, help="timed runs per model (default 5)")
    b.add_argument("--warmup", type=int, default=2, help="untimed runs first (default 2)")
    b.add_argument("--backend", choices=["torch", "onnxruntime"], default="torch")
    b.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="bf16: convolutions under CPU bf16 autocast (torch backend)")
    b.add_argument("--memory-format", choices=["channels_last", "contiguous"], default="channels_last",
                   help="layout of the convolution weights (default channels_last, as loaded models)")
    b.add_argument("--threads", type=int, default=None, help="intra-op threads (default: torch's)")
    b.add_argument("--compile", action="store_true", help="torch.compile the network (slow first call)")
    b.add_argument("--tta", action="store_true", help="x8 self-ensemble")
    b.add_argument("--peak", choices=["full", "quick"], default="full",
                   help="size of the peak measurement (quick: small, for tests)")
    b.add_argument("--malloc", choices=["retain", "default"], default="retain",
                   help="retain: glibc keeps freed memory for reuse (as `kakudai upscale`); default: as is")
    b.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    b.set_defaults(func=run)


def _parse_wh(text: str) -> tuple[int, int]:
    """'640x360' -> (640, 360): width x height."""
    w, _, h = text.lower().partition("x")
    wh = int(w), int(h or w)
    if min(wh) < 1:
        raise ValueError(text)
    return wh


def run(args: argparse.Namespace) -> int:
    import json

    from ..bench import (DEFAULT_MODELS, format_footer, format_header, format_row, format_row_header,
                         retain_freed_memory, run_bench)
    from ..infer.export import ExportError

    if args.malloc == "retain":
        retain_freed_memory()
    try:
        size = _parse_wh(args.size)
    except ValueError:
        return error(args.size, "expected --size WxH, e.g. 640x360")
    if args.repeat < 1:
        return error("bench", "--repeat must be at least 1")

    def header(rep: dict) -> None:
        print(format_header(rep), "", format_row_header(), sep="\n", flush=True)

    def row(r) -> None:
        print(format_row(r), flush=True)

    try:  # a WeightsError names its model or file: main() reports it
        report = run_bench(args.model or DEFAULT_MODELS, scale=args.scale, size=size,
                           repeat=args.repeat, warmup=args.warmup, backend=args.backend,
                           precision=args.precision, memory_format=args.memory_format,
                           compile=args.compile, tta=args.tta, threads=args.threads,
                           peak_size=args.peak, on_peak=None if args.json else header,
                           on_result=None if args.json else row)
    except ExportError as e:
        return fail(e)
    except (KeyError, ValueError) as e:  # unknown model name, a scale the model cannot serve
        return fail(e, "bench")
    print(json.dumps(report) if args.json else f"\n{format_footer(report)}")
    return 0

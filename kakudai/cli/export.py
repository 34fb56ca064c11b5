"""``kakudai export``: a model's network to ONNX with dynamic height and width (:mod:`kakudai.infer.export`)."""

from __future__ import annotations

import argparse

from .errors import error, fail

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    x = sub.add_parser("export", help="export a model's network to ONNX (dynamic height/width)")
    x.add_argument("model", metavar="MODEL", help="a shipped model name or .safetensors file")
    x.add_argument("--scale", type=float, default=3)
    x.add_argument("--onnx", required=True, metavar="OUT.onnx")
    x.add_argument("--opset", type=int, default=18)
    x.add_argument("--allow-random", action="store_true",
                   help="export an architecture with random weights when none are shipped (tests, timing)")
    x.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..bench import load_for_bench
    from ..infer.export import ExportError, export_onnx
    from ..models.registry import arch_of

    if not args.onnx:
        return error("export", "give --onnx OUT.onnx")
    try:  # a WeightsError names its model or file: main() reports it
        model, weights = load_for_bench(args.model, args.scale)
        if weights.startswith("random") and not args.allow_random:
            return error(args.model, f"no shipped weights at x{args.scale:g}; pass a .safetensors file "
                                     "(or --allow-random to export untrained weights)")
        out = export_onnx(model, args.onnx, args.scale, opset=args.opset)
    except ExportError as e:
        return fail(e, args.model)
    except (KeyError, ValueError, OSError) as e:
        return fail(e, args.onnx)
    print(f"wrote {out} ({arch_of(model) or args.model} x{args.scale:g}, weights: {weights}, "
          f"input x: (N, {model.spec.channels}, H, W) float32, dynamic N/H/W)")
    return 0

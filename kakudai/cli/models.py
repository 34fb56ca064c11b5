"""``kakudai models``: the model overview (parameters, multiply-adds, weights), or one
model's layer table (:mod:`kakudai.summary`)."""

from __future__ import annotations

import argparse

from .errors import error, fail

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser("models", help="list models (parameters, multiply-adds, weights) or one model's layers")
    m.add_argument("name", nargs="?", metavar="NAME", help="a model name or .safetensors file: print its layer table")
    m.add_argument("--scale", type=float, default=None, help="scale for the layer table (default: the model's)")
    m.add_argument("--input", default="64x64", metavar="HxW", help="input (low-resolution) size for the layer table")
    m.add_argument("--json", action="store_true", help="the model list as one JSON line")
    m.set_defaults(func=run)


def _parse_hw(text: str) -> tuple[int, int]:
    h, _, w = text.lower().partition("x")
    return int(h), int(w or h)


def run(args: argparse.Namespace) -> int:
    import json

    from ..checkpoint import load_weights_file
    from ..registry import create_model, list_models
    from ..summary import format_layer_table, format_overview, models_overview
    from ..zoo import ZOO, load_model

    if args.name is None:
        records = models_overview()
        print(json.dumps(records) if args.json else format_overview(records))
        return 0
    try:
        hw = _parse_hw(args.input)
    except ValueError:
        return error(args.input, "expected --input HxW, e.g. 64x64")
    s = args.scale
    shipped = ZOO.get(args.name)
    try:  # a WeightsError names its file: main() reports it
        if args.name.endswith(".safetensors"):
            model = load_weights_file(args.name)
        elif shipped is not None and shipped.present():  # as shipped, at the scale asked or its first
            at = s if s is not None or not shipped.scales else shipped.present_scales()[0]
            model = load_model(args.name, at)
        elif args.name not in list_models():
            return error(args.name, f"unknown model; known: {', '.join(list_models())}")
        else:
            model = create_model(args.name, **({} if s is None else {"scale": int(s) if s.is_integer() else s}))
    except (TypeError, ValueError) as e:
        if s is None:
            return fail(e, args.name)
        return error(args.name, f"cannot build it at x{s:g} ({e})")
    scale = s if s is not None else model.spec.scale  # the scale it was built for (a multi-scale file: its first)
    print(format_layer_table(model, float(scale), hw, title=f"{args.name} x{float(scale):g}"))
    return 0

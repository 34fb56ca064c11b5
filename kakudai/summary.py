"""Model summaries: parameter counts, multiply-adds per output pixel, layer tables.

Multiply-adds (MACs) are counted by forward hooks on every ``Conv2d``,
``ConvTranspose2d`` and ``Linear`` during a real forward pass, so they follow
whatever the model actually runs (e.g. only the tail of the requested scale).
Element-wise ops, pixel shuffle, the bicubic pre-upsampling of pre-upsampled
models and the bicubic chroma of Y-only models are not counted: they cost a
few tens of operations per pixel, against thousands for the convolutions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import torch
import torch.nn as nn

from .checkpoint import read_metadata
from .infer.upscale import model_forward
from .registry import create_model, list_models
from .zoo import ALIASES, Shipped, shipped

__all__ = ["LayerRow", "count_params", "layer_macs", "trace_layers", "macs_per_output_pixel",
           "build_for_scale", "models_overview", "format_overview", "format_layer_table",
           "human"]

_COUNTED = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)


def count_params(model: nn.Module) -> int:
    """Number of parameters (shared tensors counted once)."""
    return sum(p.numel() for p in model.parameters())


def layer_macs(module: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    """Multiply-adds of one call of a Conv2d / ConvTranspose2d / Linear (0 otherwise).

    Conv: every output value is a dot product of (C_in / groups) * kh * kw terms.
    Transposed conv: every input value is scattered into (C_out / groups) * kh * kw
    outputs. Linear: every output value sums ``in_features`` products.
    """
    if isinstance(module, nn.ConvTranspose2d):
        kh, kw = module.kernel_size
        return inp.numel() * (module.out_channels // module.groups) * kh * kw
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return out.numel() * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return out.numel() * module.in_features
    return 0


@dataclass
class LayerRow:
    """One call of a module during the traced forward pass."""

    name: str  # dotted path in the model
    kind: str  # class name
    out_shape: tuple[int, ...]
    params: int  # parameters owned directly by the module, counted at its first call only
    macs: int


def trace_layers(model: nn.Module, x: torch.Tensor, scale: float) -> tuple[list[LayerRow], torch.Tensor]:
    """Run ``model`` on ``x`` at ``scale`` (through :func:`model_forward`, so a
    pre-upsampled model sees the bicubic-upsampled input) and record every leaf
    module call, plus any module that owns parameters directly. Returns the rows
    in call order and the model output."""
    rows: list[LayerRow] = []
    seen: set[int] = set()
    hooks = []

    def hook(name: str):
        def fn(mod: nn.Module, args: tuple, out: Any) -> None:
            inp = args[0] if args and isinstance(args[0], torch.Tensor) else None
            own = 0
            if id(mod) not in seen:
                seen.add(id(mod))
                own = sum(p.numel() for p in mod.parameters(recurse=False))
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else ()
            macs = layer_macs(mod, inp, out) if inp is not None and isinstance(out, torch.Tensor) else 0
            rows.append(LayerRow(name, type(mod).__name__, shape, own, macs))
        return fn

    for name, mod in model.named_modules():
        if not name:
            continue
        leaf = next(mod.children(), None) is None
        if leaf or any(True for _ in mod.parameters(recurse=False)):
            hooks.append(mod.register_forward_hook(hook(name)))
    try:
        with torch.no_grad():
            out = model_forward(model.eval(), x, scale)
    finally:
        for h in hooks:
            h.remove()
    return rows, out


def network_channels(model: nn.Module) -> int:
    """Input planes of the bare network: the image channels, plus the constant level
    plane of a restorer that takes its strength as an input map."""
    return model.spec.in_channels


def macs_per_output_pixel(model: nn.Module, scale: float, lr_size: tuple[int, int] = (24, 24)) -> float:
    """Multiply-adds per output (high-resolution) pixel of one forward pass.

    Counted on a real forward of an ``lr_size`` input (batch 1); pre-upsampled
    models run at the high-resolution size, as they do in use. With the
    same-padded convolutions of these models the figure does not depend on
    the size.
    """
    x = torch.rand(1, network_channels(model), *lr_size)
    rows, out = trace_layers(model, x, scale)
    return sum(r.macs for r in rows) / (out.shape[-2] * out.shape[-1])


def build_for_scale(name: str, scale: int, **args: Any) -> nn.Module | None:
    """``name`` built for ``scale`` with ``args`` (default: its default arguments), or
    None if it cannot serve that scale (e.g. a restoration-only model)."""
    try:
        model = create_model(name, **{**args, "scale": scale})
    except TypeError:  # no ``scale`` argument: usable only at its own fixed scale
        model = create_model(name, **args)
        return model if model.spec.supports(scale) else None
    except ValueError:
        return None
    return model


def _describe(rec: dict[str, Any], model: nn.Module, scale: int) -> None:
    rec["params"][scale] = count_params(model)
    rec["macs_per_px"][scale] = macs_per_output_pixel(model, scale)
    rec["channels"] = model.spec.channels
    rec["pre_upsampled"] = model.spec.pre_upsampled


def _shipped_record(e: Shipped, scales: Iterable[int]) -> dict[str, Any]:
    """A shipped model, described by the architecture arguments in its own files."""
    rec: dict[str, Any] = {"name": e.name, "task": e.task, "arch": e.arch, "params": {}, "macs_per_px": {},
                           "weights": e.present_scales(), "gray": e.gray,
                           "aliases": sorted(a.name for a in ALIASES.values() if a.target == e.name)}
    if e.task != "upscale":  # same size out: one figure, at x1
        meta = read_metadata(e.path())
        _describe(rec, create_model(meta["arch"], **meta["args"]), 1)
        return rec
    for s in scales:
        torch.manual_seed(0)
        if e.scales:
            model = None
            if s in e.scales and e.path(s).exists():
                meta = read_metadata(e.path(s))
                model = create_model(meta["arch"], **meta["args"])
        else:
            meta = read_metadata(e.path())
            model = build_for_scale(meta["arch"], s, **meta["args"])
        if model is None:
            rec["params"][s] = rec["macs_per_px"][s] = None
        else:
            _describe(rec, model, s)
    return rec


def models_overview(scales: Iterable[int] = (2, 3, 4)) -> list[dict[str, Any]]:
    """One record per shipped model (:mod:`kakudai.zoo`), then per registered
    architecture that ships under no name of its own: task (None for a bare
    architecture), parameters and MACs per output pixel at each scale (None where
    it cannot serve it; a restorer's at x1 only), input kind, channels, and the
    scales of its shipped files (``[]``: one scale-free file; None: no weights).
    A shipped model is described by the arguments in its files (the shipped
    ``unet-noise`` is deeper than the architecture's defaults)."""
    scales = list(scales)
    out = [_shipped_record(e, scales) for e in shipped()]
    names = {r["name"] for r in out}
    for name in list_models():
        if name in names:
            continue
        rec: dict[str, Any] = {"name": name, "task": None, "arch": name, "params": {}, "macs_per_px": {},
                               "weights": None, "gray": None, "aliases": []}
        for s in scales:
            torch.manual_seed(0)
            model = build_for_scale(name, s)
            if model is None:
                rec["params"][s] = rec["macs_per_px"][s] = None
            else:
                _describe(rec, model, s)
        out.append(rec)
    return out


def human(n: float | None) -> str:
    """1234 -> '1.23K', 5.6e6 -> '5.60M'; None -> '-'."""
    if n is None:
        return "-"
    n = float(n)
    if n == 0:
        return "0"
    for unit, div in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.3g}{unit}"
    return f"{n:.3g}" if not n.is_integer() else str(int(n))


def _table(header: list[str], rows: list[list[str]], right: set[int]) -> str:
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    def line(r: list[str]) -> str:
        return "  ".join(str(v).rjust(w) if i in right else str(v).ljust(w)
                         for i, (v, w) in enumerate(zip(r, widths))).rstrip()
    rule = "-" * len(line(header))
    return "\n".join([line(header), rule] + [line(r) for r in rows])


def format_overview(records: list[dict[str, Any]], scales: Iterable[int] = (2, 3, 4)) -> str:
    """The ``kakudai models`` table."""
    scales = list(scales)
    tag = "/".join(f"x{s}" for s in scales)
    header = ["model", "task", "input", "ch", f"params {tag}", f"MACs per output pixel {tag}", "shipped weights"]
    rows = []
    for r in records:
        if r["task"] not in (None, "upscale"):  # a restorer: same size, one figure
            ptxt, mtxt, wtxt = human(r["params"][1]), f"{human(r['macs_per_px'][1])} (same size)", "one file"
        else:
            params = [r["params"][s] for s in scales]
            ptxt = human(params[0]) if len(set(params)) == 1 else " / ".join(human(p) for p in params)
            mtxt = " / ".join(human(r["macs_per_px"][s]) for s in scales)
            w = r["weights"]
            wtxt = "-" if w is None else ("any scale" if not w else " ".join(f"x{s:g}" for s in w))
        if r.get("gray"):
            wtxt += f", gray: {r['gray']}"
        name = r["name"] + (f" ({', '.join(r['aliases'])})" if r["aliases"] else "")
        inp = "-" if "pre_upsampled" not in r else ("HR bicubic" if r["pre_upsampled"] else "LR")
        if r["task"] not in (None, "upscale"):
            inp = "image+level"
        task = r["task"] or "architecture"
        rows.append([name, task, inp, str(r.get("channels", "-")), ptxt, mtxt, wtxt])
    note = ("MACs: multiply-adds of the network's Conv2d/ConvTranspose2d/Linear layers per output "
            "pixel,\ncounted on a real forward pass (bicubic pre-upsampling and chroma not counted). "
            "ch 1 = Y-only;\ntask \"architecture\": code with no weights shipped under that name (train your own).")
    return _table(header, rows, right={3}) + "\n\n" + note


def format_layer_table(model: nn.Module, scale: float, input_hw: tuple[int, int],
                       title: str = "") -> str:
    """A Keras-style summary of one forward pass on an (1, C, H, W) input of size
    ``input_hw`` (the low-resolution image): layer, type, output shape,
    parameters, running total, and multiply-adds."""
    c = network_channels(model)
    x = torch.rand(1, c, *input_hw)
    rows, out = trace_layers(model, x, scale)
    total = 0
    table = []
    for r in rows:
        total += r.params
        table.append([r.name, r.kind, str(r.out_shape), f"{r.params:,}", f"{total:,}", human(r.macs)])
    table.append(["(output)", "", str(tuple(out.shape)), "", "", ""])
    all_params = count_params(model)
    macs = sum(r.macs for r in rows)
    npx = out.shape[-2] * out.shape[-1]
    lines = []
    if title:
        lines.append(title)
    net_in = tuple(x.shape)
    if model.spec.pre_upsampled:
        net_in = (1, c, round(input_hw[0] * scale), round(input_hw[1] * scale))
        lines.append(f"input (1, {c}, {input_hw[0]}, {input_hw[1]}) -> bicubic x{scale:g} -> network input {net_in}")
    else:
        lines.append(f"input {net_in}, scale x{scale:g}")
    lines.append("")
    lines.append(_table(["layer", "type", "output shape", "params", "total", "MACs"], table,
                        right={3, 4, 5}))
    lines.append("")
    lines.append(f"parameters: {all_params:,}"
                 + (f" ({all_params - total:,} in layers not run at x{scale:g})" if all_params != total else ""))
    lines.append(f"multiply-adds: {human(macs)} total, {human(macs / npx)} per output pixel")
    return "\n".join(lines)

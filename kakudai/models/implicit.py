"""Implicit upscaling: one model for any scale or target size.

The image is treated as a function of continuous coordinates (LIIF, Chen et
al. 2021): an encoder turns the low-resolution input into a latent grid
``z`` at input resolution, and a decoder gives each output pixel its value
from (its position relative to the nearest latent, the output cell size, the
3x3 neighbourhood of latents around it).

Encoder: the flagship's body (:mod:`kakudai.models.ksr`): ``head``, ``body``
and ``body_end`` have KSR's names and shapes, so ``init_from`` in a training
config loads a trained KSR body into it (its scale tails are skipped).

Decoder, built for a CPU (LIIF's default MLP costs ~1.4M multiply-adds per
output pixel; this one a few thousand, see docs/implicit.md):

* LIIF's first MLP layer acts on ``[unfold3x3(z), rel_y, rel_x, cell_y,
  cell_x]``. Being linear, it splits into ``W_z . unfold3x3(z)``, which is a
  3x3 convolution of the latent grid computed **once per input pixel**
  (``dec_in``), plus a term of the coordinates. Each output pixel then only
  gathers its latent's precomputed vector and adds the coordinate term.
* That coordinate term is separable: rows and columns are decoded by two tiny
  linear maps (``dec_pos_y`` on (rel_y, cell_y), ``dec_pos_x`` on (rel_x,
  cell_x)) evaluated once per output row / column and broadcast.
* What remains per output pixel is a small MLP (1x1 convolutions, ``hidden``
  widths) to ``channels`` values.
* No four-way local ensemble by default (LIIF's, 4x the per-pixel cost);
  ``ensemble=True`` enables it (bilinear-weighted over the 4 nearest latents).

``decoder="basis"`` (the shipped configuration) goes further: the output is
*linear* in a per-input-pixel coefficient grid, with weights that depend only
on the sub-pixel position, in separable form::

    r(y, x) = sum_ab  Py_a(rel_y, cell_y) * Px_b(rel_x, cell_x) * C_ab[iy, ix]

``C = dec_in(z)`` (a 3x3 convolution to ``basis^2`` maps per channel) runs
once per input pixel; ``Py`` / ``Px`` are tiny MLPs evaluated once per output
row / column. Per output pixel only ``basis^2 / s + basis`` multiply-adds
remain (two contractions). Why it suits a trained flagship body: KSR's tails
are linear too (a 3x3 convolution to ``s^2`` sub-pixel maps, then a pixel
shuffle), and with ``basis >= s`` this form can express such a tail at every
integer scale from one coefficient grid, while the position MLPs interpolate
between the sub-pixel phases for non-integer scales.
* The output is a residual over MATLAB bicubic of the input at the same
  sampling positions, so at initialisation the model *is* bicubic.

Sampling convention (MATLAB ``imresize``): for scale ``s`` the output has
``ceil(h * s)`` rows and output row ``i`` (0-based) sits at input coordinate
``(i + 0.5) / s - 0.5`` (input pixel centres at integers). A target size
``(H, W)`` uses ``s = H / h`` per axis. The cell size fed to the decoder is
``1 / s`` input pixels, clamped at ``1 / max_scale`` (LIIF's rule for scales
beyond the training range).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..ops.resize import contributions, imresize_torch, output_size
from .registry import register
from .blocks import ResBlock
from .spec import ModelSpec, widest_layer_floats
from .shrink import integer_scale, shrink_from_integer

__all__ = ["Implicit", "Latent", "sample_positions", "decoder_macs_per_pixel"]

# Ties (an output pixel exactly between two latents) must go the same way in
# a tile and in the whole image, whatever the float round-off: bias them up.
_TIE_EPS = 1e-9
# Inference decodes output rows in chunks of about this many hidden activations.
_CHUNK_ELEMS = 1 << 18

Scale = float | tuple[float, float]


class Pointwise(nn.Conv2d):
    """A 1x1 convolution (one MLP layer per output pixel) that always runs with
    plain NCHW weight strides: channels-last weights (``for_inference``) would make
    the per-pixel tensors channels-last, which is slower for this memory-bound part."""

    def __init__(self, cin: int, cout: int):
        super().__init__(cin, cout, 1)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        w = self.weight
        return F.conv2d(a, w.reshape(w.shape[0], w.shape[1])[:, :, None, None], self.bias)


class Latent(NamedTuple):
    """An encoded image: the input itself (for the bicubic skip), the decoder's
    first-layer pre-activation at input resolution (B, hidden[0], h, w) and, for
    ``base="integer"``, the body's features (B, width, h, w) that the tails read."""

    x: torch.Tensor
    feat: torch.Tensor
    body: torch.Tensor | None = None


def sample_positions(in_len: int, out_len: int, scale: float) -> torch.Tensor:
    """Input coordinates (float64, pixel centres at 0..in_len-1) of ``out_len``
    output pixels at ``scale`` (MATLAB's mapping ``(i + 0.5) / s - 0.5``)."""
    i = torch.arange(out_len, dtype=torch.float64)
    return (i + 0.5) / scale - 0.5


def _resolve(in_hw: tuple[int, int], scale: Scale | None, size: Sequence[int] | None,
             default: float) -> tuple[tuple[int, int], tuple[float, float]]:
    """Output size and per-axis scale by MATLAB's rule (exactly one of scale/size)."""
    if size is not None:
        return output_size(in_hw, size=tuple(size))
    s = default if scale is None else scale
    if isinstance(s, (tuple, list)):
        return output_size(in_hw, scale=(float(s[0]), float(s[1])))
    return output_size(in_hw, scale=float(s))


class Implicit(nn.Module):
    """Arbitrary-scale SR. ``forward(x, scale=None, size=None)``:
    (B, C, h, w) in [0, 1] -> (B, C, ceil(h*s), ceil(w*s)), or (B, C, H, W) for ``size``.

    ``scale`` is a float or a per-axis (s_h, s_w) pair; ``scale`` given at
    construction is only the default. ``channels`` 1 = Y-only like the flagship.
    ``decoder`` is ``"basis"`` (separable position basis of size ``basis``, position
    MLPs of width ``pos_hidden``) or ``"mlp"`` (LIIF-style; ``hidden`` are its widths,
    the first one that of the precomputed 3x3 layer); ``max_scale`` is the largest
    training scale.
    """

    def __init__(self, scale: float | Sequence[float] = 2.0, channels: int = 1, width: int = 48, blocks: int = 8,
                 hidden: Sequence[int] = (48, 48), ensemble: bool = False, max_scale: float = 4.0,
                 decoder: str = "basis", basis: int = 8, pos_hidden: int = 32, taps: int = 1,
                 wide_taps: int = 0, base: str = "bicubic", base_scales: Sequence[int] = (2, 3, 4)):
        super().__init__()
        if decoder not in ("mlp", "basis"):
            raise ValueError(f"decoder must be 'mlp' or 'basis', not {decoder!r}")
        if decoder == "mlp" and not hidden:
            raise ValueError("hidden needs at least one width")
        if decoder == "basis" and ensemble:
            raise ValueError("the basis decoder has no ensemble (its continuity is learned)")
        if taps not in (1, 2, 4) or (taps > 1 and decoder != "basis"):
            raise ValueError("taps is 1, 2 or 4 (more than 1 only with the basis decoder)")
        if wide_taps not in (0, 2, 4) or (wide_taps and decoder != "basis"):
            raise ValueError("wide_taps is 0, 2 or 4 (only with the basis decoder)")
        if base not in ("bicubic", "integer"):
            raise ValueError(f"base must be 'bicubic' or 'integer', not {base!r}")
        self.decoder = decoder
        self.base = base
        self.base_scales = tuple(sorted(int(n) for n in base_scales)) if base == "integer" else ()
        self.basis = int(basis)
        self.taps = int(taps)
        self.wide_taps = int(wide_taps)
        # A list (a fixed-scale training config's scales) sets the default to its first.
        self.scale = float(scale[0] if isinstance(scale, (list, tuple)) else scale)
        self.channels = channels
        self.ensemble = bool(ensemble)
        self.max_scale = float(max_scale)
        # Encoder reach 2*blocks+2, dec_in 1, the neighbour latent 1.
        radius = 2 * blocks + 3 + max(1, self.taps // 2, self.wide_taps // 2)
        if self.base_scales:  # a tail's 3x3 (1), then the resize's kernel (under 2 input px)
            radius = max(radius, 2 * blocks + 3 + 2)
        # Encoder: KSR's modules under KSR's names (init_from loads a trained body).
        self.head = nn.Conv2d(channels, width, 3, padding=1)
        self.body = nn.Sequential(*[ResBlock(width) for _ in range(blocks)])
        self.body_end = nn.Conv2d(width, width, 3, padding=1)
        if self.base_scales:
            # KSR's integer-scale tails under KSR's names (init_from loads them). The base
            # image is KSR at the next integer scale, resized by MATLAB bicubic to the
            # target: the integer-then-shrink method, which the decoder then corrects.
            self.tails = nn.ModuleDict({f"x{n}": nn.Conv2d(width, channels * n * n, 3, padding=1)
                                        for n in self.base_scales})
        if decoder == "basis":
            k = self.basis
            self.dec_in = nn.Conv2d(width, channels * k * k, 3, padding=1)
            self.dec_pos_y = _pos_mlp(pos_hidden, k)
            self.dec_pos_x = _pos_mlp(pos_hidden, k)
            with torch.no_grad():  # start as (nearly) the base; exactly, over a trained base
                self.dec_in.weight.mul_(0.0 if self.base_scales else 0.1)
                self.dec_in.bias.zero_()
            if self.wide_taps:
                # A second reading of the same coefficient grid over the wide_taps latents
                # around each pixel per axis, with its own position weights. It starts at
                # exactly zero, so it can be added to a trained 1-tap decoder without
                # changing its output (the 1-tap decoder sees only +-1.5 latents).
                self.dec_wide_y = _pos_mlp(pos_hidden, k)
                self.dec_wide_x = _pos_mlp(pos_hidden, k)
                with torch.no_grad():
                    self.dec_wide_y[-1].weight.zero_()
                    self.dec_wide_y[-1].bias.zero_()
        else:
            # Decoder. dec_in == LIIF's first linear layer applied to unfold3x3(z).
            h = [int(v) for v in hidden]
            self.dec_in = nn.Conv2d(width, h[0], 3, padding=1)
            self.dec_pos_y = nn.Linear(2, h[0], bias=False)
            self.dec_pos_x = nn.Linear(2, h[0], bias=False)
            self.dec_mlp = nn.ModuleList(Pointwise(a, b) for a, b in zip(h[:-1], h[1:]))
            self.dec_out = Pointwise(h[-1], channels)
            with torch.no_grad():  # start as (nearly) plain bicubic
                self.dec_out.weight.mul_(0.1)
                self.dec_out.bias.zero_()
        self.spec = ModelSpec(scale=self.scale, scales="any", takes_scale=True, channels=channels,
                              receptive_radius=radius,
                              feature_floats_per_pixel=widest_layer_floats(self))

    # --------------------------------------------------------------- encode
    def encode(self, x: torch.Tensor) -> Latent:
        """Everything that runs at input resolution, once per image."""
        f = self.head(x)
        f = f + self.body_end(self.body(f))
        return Latent(x, self.dec_in(f), f if self.base_scales else None)

    # --------------------------------------------------------------- decode
    def decode(self, lat: Latent, scale: Scale | None = None,
               size: Sequence[int] | None = None) -> torch.Tensor:
        """Render an encoded image at ``scale`` or at ``size`` = (H, W)."""
        h, w = lat.x.shape[-2:]
        (oh, ow), (sh, sw) = _resolve((h, w), scale, size, self.scale)
        ys = sample_positions(h, oh, sh)
        xs = sample_positions(w, ow, sw)
        cell = (1.0 / min(sh, self.max_scale), 1.0 / min(sw, self.max_scale))
        if self.base_scales:
            skip = self._integer_base(lat, (oh, ow), (sh, sw))
        else:
            skip = imresize_torch(lat.x, scale=(sh, sw))
        return skip + self._residual(lat.feat, ys, xs, cell)

    def integer_scale(self, scale: tuple[float, float]) -> int:
        """The tail the base uses: the next integer at or above the larger scale,
        within ``base_scales`` (the largest beyond it, the smallest below it)."""
        return min(max(integer_scale(scale), self.base_scales[0]), self.base_scales[-1])

    def _integer_base(self, lat: Latent, out_hw: tuple[int, int], scale: tuple[float, float]) -> torch.Tensor:
        """KSR at the integer scale n (tail + nearest-neighbour anchor, pixel shuffle),
        then MATLAB bicubic by scale / n to ``out_hw``: the integer-then-shrink image."""
        assert lat.body is not None
        n = self.integer_scale(scale)
        r = self.tails[f"x{n}"](lat.body) + lat.x.repeat_interleave(n * n, dim=1)
        return shrink_from_integer(F.pixel_shuffle(r, n), n, scale, out_hw)

    def forward(self, x: torch.Tensor, scale: Scale | None = None,
                size: Sequence[int] | None = None) -> torch.Tensor:
        return self.decode(self.encode(x), scale=scale, size=size)

    def _members(self, pos: torch.Tensor, n: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        """Latent indices, relative positions and weights along one axis."""
        if not self.ensemble:
            idx = torch.floor(pos + 0.5 + _TIE_EPS).clamp_(0, n - 1)
            return [(idx.long(), pos - idx, None)]
        lo = torch.floor(pos + _TIE_EPS)
        frac = (pos - lo).clamp_(0, 1)
        out = []
        for idx, wgt in ((lo, 1 - frac), (lo + 1, frac)):
            idx = idx.clamp(0, n - 1)
            out.append((idx.long(), pos - idx, wgt))
        return out

    def _residual(self, feat: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor,
                  cell: tuple[float, float]) -> torch.Tensor:
        """The decoder's output (B, channels, len(ys), len(xs)) at positions ys x xs."""
        # Row/column gathers are fastest on NCHW (an inference model may be channels-last).
        feat = feat.contiguous()
        rows_fn = self._basis_rows if self.decoder == "basis" else self._residual_rows
        if torch.is_grad_enabled() and feat.requires_grad:
            return rows_fn(feat, ys, xs, cell)
        # Inference: a few output rows at a time, so the per-pixel tensors stay in
        # cache (the per-pixel MLP is memory-bound; this halves its time).
        per_row = feat.shape[1] * (feat.shape[-1] if self.decoder == "basis" else len(xs))
        rows = max(1, _CHUNK_ELEMS // per_row)
        out = feat.new_empty(feat.shape[0], self.channels, len(ys), len(xs))
        for r in range(0, len(ys), rows):
            out[:, :, r:r + rows] = rows_fn(feat, ys[r:r + rows], xs, cell)
        return out

    def _taps(self, pos: torch.Tensor, n: int, taps: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(latent index, position relative to it) along one axis for each tap:
        the nearest latent (1 tap), the two around the position (2), or four (4, the
        support of a bicubic kernel). Indices are clamped at the image border."""
        if taps == 1:
            ((idx, rel, _),) = self._members(pos, n)
            return [(idx, rel)]
        lo = torch.floor(pos + _TIE_EPS)
        first = -(taps // 2 - 1)
        out = []
        for t in range(first, first + taps):
            idx = lo + t
            out.append((idx.clamp(0, n - 1).long(), pos - idx))
        return out

    def _basis_rows(self, feat: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor,
                    cell: tuple[float, float]) -> torch.Tensor:
        """The basis decoder at positions ys x xs: (B, channels, len(ys), len(xs))."""
        out = self._contract(feat, ys, xs, cell, self.dec_pos_y, self.dec_pos_x, self.taps)
        if self.wide_taps:
            out = out + self._contract(feat, ys, xs, cell, self.dec_wide_y, self.dec_wide_x,
                                       self.wide_taps)
        return out

    def _contract(self, feat: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor,
                  cell: tuple[float, float], pos_y: nn.Module, pos_x: nn.Module,
                  taps: int) -> torch.Tensor:
        """sum over taps of pos_y(rel_y) pos_x(rel_x) . C at ys x xs: (B, channels, oh, ow)."""
        b, _, h, w = feat.shape
        k, dev = self.basis, feat.device
        # Rows first, at input width: (B, C, k, k, oh, w) -> (B, C, k, oh, w), summed over taps.
        t = None
        for iy, ry in self._taps(ys, h, taps):
            fr = feat.index_select(2, iy.to(dev)).view(b, self.channels, k, k, len(ys), w)
            part = torch.einsum("bcaeiw,ia->bceiw", fr, _at_positions(pos_y, ry, cell[0], feat))
            t = part if t is None else t + part
        out = None
        for ix, rx in self._taps(xs, w, taps):
            part = torch.einsum("bceij,je->bcij", t.index_select(4, ix.to(dev)),
                                _at_positions(pos_x, rx, cell[1], feat))
            out = part if out is None else out + part
        assert out is not None
        return out

    def _residual_rows(self, feat: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor,
                       cell: tuple[float, float]) -> torch.Tensor:
        h, w = feat.shape[-2:]
        dt, dev = feat.dtype, feat.device

        rows = [(i.to(dev), _at_positions(self.dec_pos_y, r, cell[0], feat).t()[:, :, None], wt)
                for i, r, wt in self._members(ys, h)]
        cols = [(i.to(dev), _at_positions(self.dec_pos_x, r, cell[1], feat).t()[:, None, :], wt)
                for i, r, wt in self._members(xs, w)]
        out = None
        for iy, py, wy in rows:
            fr = feat.index_select(2, iy)
            for ix, px, wx in cols:
                a = fr.index_select(3, ix).add_(py).add_(px).relu_()
                for layer in self.dec_mlp:
                    a = F.relu(layer(a), inplace=True)
                o = self.dec_out(a)
                if wy is not None and wx is not None:
                    o = o * (wy.to(dev, dt)[:, None] * wx.to(dev, dt)[None, :])
                out = o if out is None else out + o
        assert out is not None
        return out


register("implicit")(Implicit)


def _at_positions(layer: nn.Module, rel: torch.Tensor, cell: float, like: torch.Tensor) -> torch.Tensor:
    """``layer`` applied to (relative position, cell) of n rows or columns: (n, out),
    in ``like``'s dtype and device."""
    inp = torch.stack([rel, torch.full_like(rel, cell)], dim=1).to(like.device, like.dtype)
    return layer(inp)


def _pos_mlp(hidden: int, out: int) -> nn.Sequential:
    """(rel, cell) -> ``out`` basis weights; smooth (SiLU) so that the output
    varies smoothly with the sub-pixel position between trained scales."""
    return nn.Sequential(nn.Linear(2, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                         nn.Linear(hidden, out))


# ------------------------------------------------------------------ cost
def decoder_macs_per_pixel(model: Implicit, in_hw: tuple[int, int] = (48, 48),
                           scale: Scale = 2.0) -> dict[str, float]:
    """Multiply-adds per output pixel of the decoder, measured with forward hooks.

    Counts every Conv2d / Linear whose name starts with ``dec_`` during one
    forward pass (``dec_in`` runs at input resolution, so it is amortised over
    ``s^2`` output pixels), the bicubic skip's taps (from the actual MATLAB
    weight tables) and the ensemble weighting or the basis contractions. Gathers and additions are not
    multiply-adds and are not counted. Returns {"decoder", "encoder", "skip"}.
    """
    counts = {"decoder": 0.0, "encoder": 0.0}
    hooks = []

    def hook_for(kind: str):
        def hook(mod: nn.Module, inp, out) -> None:
            # batch of 1: each output element costs one dot product over weight[0]
            counts[kind] += out.numel() * mod.weight[0].numel()
        return hook

    for name, mod in model.named_modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            # The integer base's tail is part of decoding (it depends on the scale).
            dec = name.startswith(("dec_", "tails."))
            hooks.append(mod.register_forward_hook(hook_for("decoder" if dec else "encoder")))
    try:
        with torch.no_grad():
            y = model(torch.rand(1, model.channels, *in_hw), scale=scale)
    finally:
        for hk in hooks:
            hk.remove()
    oh, ow = y.shape[-2:]
    (_, _), (sh, sw) = _resolve(in_hw, scale, None, model.scale)
    # The skip: MATLAB bicubic of the input, or of the integer base's KSR image (none
    # at the base's own scale). MATLAB resizes the lower-scale dimension first (rows on ties).
    src = in_hw
    if model.base_scales:
        n = model.integer_scale((sh, sw))
        src, sh, sw = (in_hw[0] * n, in_hw[1] * n), sh / n, sw / n
    if (src[0], src[1]) == (oh, ow):
        skip = 0
    else:
        wr = contributions(src[0], oh, float(sh))[0].shape[1]
        wc = contributions(src[1], ow, float(sw))[0].shape[1]
        if sh <= sw:
            skip = oh * src[1] * wr + oh * ow * wc
        else:
            skip = src[0] * ow * wc + oh * ow * wr
    skip *= model.channels
    if model.decoder == "basis":  # the two contractions (einsum, not seen by the hooks)
        k = model.basis
        weighting = (model.taps + model.wide_taps) * model.channels * (k * k * oh * in_hw[1] + k * oh * ow)
    else:
        weighting = 4 * model.channels * oh * ow if model.ensemble else 0
    px = oh * ow
    return {"decoder": (counts["decoder"] + skip + weighting) / px,
            "encoder": counts["encoder"] / px, "skip": skip / px}


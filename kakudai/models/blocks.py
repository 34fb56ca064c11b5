"""Shared layers: the residual block, the three upsampler kinds, ICNR initialisation,
the checkerboard measure used to compare them, and model surgery (gray from RGB,
deepening)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["ResBlock", "deepened", "icnr_", "gray_from_rgb", "Upsampler", "SubPixelConv", "ResizeConv",
           "TransposedConvUp", "UPSAMPLER_KINDS", "checkerboard_energy"]


@torch.no_grad()
def icnr_(conv: nn.Conv2d, scale: int, init=nn.init.kaiming_normal_) -> nn.Conv2d:
    """ICNR (Aitken et al. 2017): initialise a conv feeding ``pixel_shuffle(scale)``
    so that every group of ``scale**2`` output channels shares one kernel.

    The sub-pixel output is then exactly nearest-neighbour upsampling of a
    plain convolution, hence free of checkerboard artifacts at initialisation.
    Weight shape (C * r^2, C_in, k, k); pixel_shuffle takes channel c*r^2 + i*r + j
    to sub-pixel (i, j) of output channel c, so copies are repeat_interleaved.
    """
    r2 = scale * scale
    out_ch, in_ch, kh, kw = conv.weight.shape
    if out_ch % r2:
        raise ValueError(f"out channels {out_ch} not divisible by scale^2={r2}")
    sub = torch.empty(out_ch // r2, in_ch, kh, kw)
    init(sub)
    conv.weight.copy_(sub.repeat_interleave(r2, dim=0))
    if conv.bias is not None:
        b = conv.bias.view(out_ch // r2, r2)[:, :1].clone()
        conv.bias.copy_(b.repeat_interleave(r2, dim=0).view(-1))
    return conv


class SubPixelConv(nn.Module):
    """Conv to C*r^2 channels at low resolution, then pixel shuffle (ESPCN)."""

    def __init__(self, in_ch: int, out_ch: int, scale: int, kernel: int = 3, icnr: bool = True):
        super().__init__()
        self.scale = scale
        self.conv = nn.Conv2d(in_ch, out_ch * scale * scale, kernel, padding=kernel // 2)
        if icnr:
            icnr_(self.conv, scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.conv(x), self.scale)


class ResizeConv(nn.Module):
    """Nearest-neighbour resize, then a conv at high resolution (Odena et al. 2016)."""

    def __init__(self, in_ch: int, out_ch: int, scale: int, kernel: int = 3):
        super().__init__()
        self.scale = scale
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=self.scale, mode="nearest"))


class TransposedConvUp(nn.Module):
    """Strided transposed convolution (the FSRCNN / DCGAN upsampler).

    Kernel ``2 * scale`` with stride ``scale`` makes the output exactly
    ``scale`` times larger; uneven kernel overlap is what causes checkerboards.
    """

    def __init__(self, in_ch: int, out_ch: int, scale: int, kernel: int | None = None):
        super().__init__()
        self.scale = scale
        k = kernel or 2 * scale
        pad = (k - scale) // 2
        extra = (k - scale) % 2
        self.deconv = nn.ConvTranspose2d(in_ch, out_ch, k, stride=scale, padding=pad,
                                         output_padding=0)
        self._crop = extra

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.deconv(x)
        if self._crop:
            y = y[..., : x.shape[-2] * self.scale, : x.shape[-1] * self.scale]
        return y


UPSAMPLER_KINDS = ("subpixel", "subpixel_noicnr", "resize_conv", "transposed")


def Upsampler(kind: str, in_ch: int, out_ch: int, scale: int, kernel: int = 3) -> nn.Module:
    """Build one of the interchangeable upsamplers by kind (see UPSAMPLER_KINDS)."""
    if kind == "subpixel":
        return SubPixelConv(in_ch, out_ch, scale, kernel, icnr=True)
    if kind == "subpixel_noicnr":
        return SubPixelConv(in_ch, out_ch, scale, kernel, icnr=False)
    if kind == "resize_conv":
        return ResizeConv(in_ch, out_ch, scale, kernel)
    if kind == "transposed":
        return TransposedConvUp(in_ch, out_ch, scale)
    raise ValueError(f"unknown upsampler kind {kind!r}; choose from {UPSAMPLER_KINDS}")


def checkerboard_energy(y: torch.Tensor, period: int, border: int = 0) -> float:
    """Energy of the component of ``y`` that repeats with the sub-pixel period.

    ``y`` is (B, C, H, W) with H, W multiples of ``period`` (an upsampler's
    output at scale ``period``). The s x s sub-pixel phases ``y[..., i::s, j::s]``
    are averaged over positions, and the result is the variance of those s^2
    phase means (mean over B and C), in squared output units. In Fourier terms
    it is the power at the non-zero multiples of the low-resolution sampling
    frequency, i.e. the checkerboard pattern's energy.

    Meant for a constant (or flat) input, whose correct upsampling has the same
    value in every phase: then any non-zero value is an artifact. ICNR
    sub-pixel and nearest resize + conv give exactly 0 away from the border;
    ``border`` drops that many low-resolution pixels on each side so that
    zero-padding effects at the image edge do not count.
    """
    s = int(period)
    if y.ndim != 4 or y.shape[-2] % s or y.shape[-1] % s:
        raise ValueError(f"expected (B, C, H, W) with H, W multiples of {s}, got {tuple(y.shape)}")
    y = y.detach().double()
    if border:
        y = y[..., border * s: y.shape[-2] - border * s, border * s: y.shape[-1] - border * s]
        if y.shape[-1] == 0 or y.shape[-2] == 0:
            raise ValueError("border leaves nothing to measure")
    b, c, h, w = y.shape
    # (B, C, h/s, s, w/s, s) -> phase means (B, C, s, s)
    phases = y.reshape(b, c, h // s, s, w // s, s).mean(dim=(2, 4))
    return float(phases.reshape(b, c, s * s).var(dim=-1, unbiased=False).mean())


def gray_from_rgb(model: nn.Module, first: str, last: str) -> nn.Module:
    """The 1-channel copy of an RGB restorer that computes what it does on a gray image.

    A gray image enters an RGB model as R = G = B, so the first layer's
    (``first``, a Conv2d) weights for the three colour inputs add up into one
    (a level-map plane after them is kept); the last layer's (``last``, a
    Conv2d or ConvTranspose2d) three outputs are averaged, as inference
    averages them for gray input. The result starts a gray-only fine-tune
    (DnCNN ships separate gray and colour models too). ``model`` must come from
    ``create_model`` with ``channels == 3``.
    """
    from .registry import create_model
    if int(getattr(model, "channels", 0)) != 3:
        raise ValueError("gray_from_rgb needs an RGB (3-channel) model")
    gray = create_model(model.arch, **dict(model.arch_args, channels=1))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    w = state[f"{first}.weight"]  # (out, 3[+1], k, k): colour inputs, then the level plane
    state[f"{first}.weight"] = torch.cat([w[:, :3].sum(1, keepdim=True), w[:, 3:]], dim=1)
    lw = state[f"{last}.weight"]  # Conv2d (3, in, k, k); ConvTranspose2d (in, 3, k, k)
    out_dim = 1 if isinstance(model.get_submodule(last), nn.ConvTranspose2d) else 0
    state[f"{last}.weight"] = lw.mean(out_dim, keepdim=True)
    state[f"{last}.bias"] = state[f"{last}.bias"].mean(0, keepdim=True)
    gray.load_state_dict(state)
    return gray


class ResBlock(nn.Module):
    """conv3x3 - ReLU - conv3x3 plus identity, no normalisation (EDSR)."""

    def __init__(self, width: int):
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        # Start each block near identity: deep plain stacks train faster this way.
        with torch.no_grad():
            self.conv2.weight.mul_(0.1)
            self.conv2.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


def deepened(model: nn.Module, blocks: int) -> nn.Module:
    """A copy of ``model`` with ``blocks`` residual blocks per stage that computes the same function.

    ``model`` comes from ``create_model`` with a ``blocks`` argument (KSR, the
    implicit model's encoder, the U-Net). The deeper model is built with the
    same arguments, every trained tensor is copied to its place (stages keep
    their blocks first), and each new :class:`ResBlock` gets its second
    convolution zeroed: an exact identity that still learns (its conv2 gets a
    gradient at once); their random first convolutions come from a fixed seed, so
    growing the same model twice gives the same tensors. Growing a trained network
    this way adds capacity without giving up what it learned (Net2Net's "deeper"
    operator).
    """
    from .registry import create_model
    if "blocks" not in getattr(model, "arch_args", {}):
        raise ValueError(f"a {getattr(model, 'arch', type(model).__name__)} model has no 'blocks' argument")
    if blocks < int(model.arch_args["blocks"]):
        raise ValueError(f"cannot deepen {model.arch_args.get('blocks')} blocks to {blocks}")
    with torch.random.fork_rng(devices=[]):  # a config chain's deepen step reproduces its file
        torch.manual_seed(0)
        deep = create_model(model.arch, **dict(model.arch_args, blocks=blocks))
    loaded = deep.load_state_dict(model.state_dict(), strict=False)
    assert not loaded.unexpected_keys  # every trained tensor has its place
    missing = set(loaded.missing_keys)
    with torch.no_grad():
        for name, m in deep.named_modules():
            if isinstance(m, ResBlock) and f"{name}.conv2.weight" in missing:
                m.conv2.weight.zero_()
                m.conv2.bias.zero_()
    return deep

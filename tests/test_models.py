"""Every registered model: forward shapes at each scale, safetensors round trip;
the upsampler blocks: ICNR exactness and the checkerboard measure; the summary."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import kakudai
from kakudai import zoo
from kakudai.checkpoint import read_metadata, save_model
from kakudai.zoo import WEIGHTS_DIR, load_model
from kakudai.infer.upscale import model_forward
from kakudai.models.blocks import (UPSAMPLER_KINDS, SubPixelConv, TransposedConvUp, Upsampler,
                                   checkerboard_energy, icnr_)
from kakudai.summary import count_params, format_layer_table, format_overview, macs_per_output_pixel, models_overview

SCALES = (2, 3, 4)
# Models whose constructor needs more than ``scale=`` for a test build go here.
SPECIAL_ARGS: dict[str, dict] = {}
# Extra builds worth covering: restoration (scale 1) use of RED-Net.
EXTRA_CASES: list[tuple[str, dict, int]] = [("rednet", {"scale": 1}, 1)]


def _build(name: str, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    return kakudai.create_model(name, **{**SPECIAL_ARGS.get(name, {}), **kwargs}).eval()


def _in_channels(model: nn.Module) -> int:
    return model.spec.in_channels


def _cases() -> list[tuple[str, dict, int]]:
    """(name, constructor args, scale) for every registered model at x2/x3/x4,
    plus one multi-scale build for models that declare ``scales``."""
    cases = []
    for name in kakudai.list_models():
        for s in SCALES:
            cases.append((name, {"scale": s}, s))
        if hasattr(_build(name, scale=2), "scales"):
            cases += [(name, {"scale": list(SCALES)}, s) for s in SCALES]
    return cases + [c for c in EXTRA_CASES if c[0] in kakudai.list_models()]


CASES = _cases()
IDS = [f"{n}-{'ms' if isinstance(a.get('scale'), list) else 'x' + str(a.get('scale'))}-at{s}"
       for n, a, s in CASES]


def _first_per_model(cases: list[tuple[str, dict, int]]) -> list:
    """``cases`` with all but the first per model and kind (one scale or several)
    marked slow: what a test checks does not depend on the scale."""
    seen, out = set(), []
    for n, a, s in cases:
        key = (n, isinstance(a.get("scale"), list))
        out.append((n, a, s) if key not in seen else pytest.param(n, a, s, marks=pytest.mark.slow))
        seen.add(key)
    return out


@pytest.mark.parametrize("name,args,scale", CASES, ids=IDS)
def test_forward_shape(name: str, args: dict, scale: int) -> None:
    model = _build(name, **args)
    c = _in_channels(model)
    out_c = model.spec.channels
    x = torch.rand(2, c, 13, 10)  # odd, non-square: catches transposed/stride size slips
    with torch.no_grad():
        y = model_forward(model, x, scale)
    assert y.shape == (2, out_c, 13 * scale, 10 * scale)
    assert torch.isfinite(y).all()
    assert model.spec.supports(scale)


@pytest.mark.parametrize("name,args,scale", _first_per_model(CASES), ids=IDS)
def test_save_load_round_trip(name: str, args: dict, scale: int, tmp_path) -> None:
    model = _build(name, **args)
    # Move weights away from their initial values so a load that silently
    # kept a fresh initialisation could not pass.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = save_model(model, tmp_path / f"{name}.safetensors")
    meta = read_metadata(path)
    assert meta["arch"] == name and meta["args"] == args
    torch.manual_seed(123)  # a different fresh init inside load_model
    loaded = kakudai.load_model(path)
    assert type(loaded) is type(model)
    ref, got = model.state_dict(), loaded.state_dict()
    assert ref.keys() == got.keys()
    for k in ref:
        assert torch.equal(ref[k], got[k]), k
    # load_model may pick a faster memory layout (channels-last), which changes
    # the summation order inside convolutions: equal up to float rounding.
    x = torch.rand(1, _in_channels(model), 11, 9)
    with torch.no_grad():
        torch.testing.assert_close(model_forward(loaded, x, scale), model_forward(model, x, scale),
                                   rtol=1e-5, atol=1e-6)


def test_multiscale_for_scale_matches_tail(tmp_path) -> None:
    """A multi-scale file reduced to one scale gives that tail's output."""
    for name in kakudai.list_models():
        model = _build(name, scale=2)
        if not hasattr(model, "scales"):
            continue
        multi = _build(name, scale=[2, 3, 4])
        path = save_model(multi, tmp_path / f"{name}_ms.safetensors")
        single = kakudai.load_model(path, scale=3)
        assert single.spec.scales == (3,)
        x = torch.rand(1, _in_channels(multi), 8, 8)
        with torch.no_grad():
            torch.testing.assert_close(single(x), multi(x, scale=3), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ upsamplers

@pytest.mark.parametrize("scale", SCALES)
def test_icnr_equals_nearest_upsampling_of_a_conv(scale: int) -> None:
    torch.manual_seed(scale)
    up = SubPixelConv(8, 3, scale, kernel=3, icnr=True)
    plain = nn.Conv2d(8, 3, 3, padding=1)
    with torch.no_grad():
        plain.weight.copy_(up.conv.weight[:: scale * scale])
        plain.bias.copy_(up.conv.bias[:: scale * scale])
    x = torch.randn(2, 8, 13, 11)
    with torch.no_grad():
        assert torch.equal(up(x), F.interpolate(plain(x), scale_factor=scale, mode="nearest"))


def test_icnr_rejects_indivisible_channels() -> None:
    with pytest.raises(ValueError):
        icnr_(nn.Conv2d(4, 10, 3), 2)


@pytest.mark.parametrize("scale", SCALES)
def test_checkerboard_energy_by_upsampler_kind(scale: int) -> None:
    """Constant input: ICNR sub-pixel (and resize + conv) have no energy at the
    sub-pixel period; default sub-pixel and transposed convolutions do."""
    x = torch.full((1, 16, 12, 12), 0.5)
    energy = {}
    for kind in UPSAMPLER_KINDS:
        torch.manual_seed(0)
        with torch.no_grad():
            energy[kind] = checkerboard_energy(Upsampler(kind, 16, 3, scale)(x), scale, border=1)
    assert energy["subpixel"] < 1e-12
    assert energy["resize_conv"] < 1e-12
    assert energy["subpixel_noicnr"] > 1e-4
    assert energy["transposed"] > 1e-4


def test_checkerboard_energy_values() -> None:
    """The measure on hand-made patterns: 0 for a flat image, the phase variance
    for a pure period-2 pattern, independent of image size."""
    flat = torch.full((1, 1, 8, 8), 0.3)
    assert checkerboard_energy(flat, 2) == 0.0
    phases = torch.tensor([[0.0, 1.0], [1.0, 0.0]])  # classic checkerboard
    board = phases.repeat(4, 4)[None, None]
    assert checkerboard_energy(board, 2) == pytest.approx(0.25)
    assert checkerboard_energy(phases.repeat(8, 8)[None, None], 2) == pytest.approx(0.25)
    assert checkerboard_energy(board, 4) == pytest.approx(0.25)  # period 2 is also period 4
    with pytest.raises(ValueError):
        checkerboard_energy(torch.zeros(1, 1, 9, 8), 2)


def test_espcn_offset_is_a_bias_reparameterisation() -> None:
    # ESPCN's input/output offset must not change the architecture: away from the
    # border (where zero padding now means mid-grey), the same function is an
    # offset-free ESPCN whose first and last biases are shifted.
    torch.manual_seed(0)
    shifted = _build("espcn", scale=3, channels=1, offset=0.5)
    plain = _build("espcn", scale=3, channels=1, offset=0.0)
    plain.load_state_dict(shifted.state_dict())
    with torch.no_grad():
        first = plain.features[0]
        first.bias -= 0.5 * first.weight.sum(dim=(1, 2, 3))
        plain.upsample.conv.bias += 0.5
    x = torch.rand(2, 1, 13, 15)
    b = 3 * shifted.spec.receptive_radius
    torch.testing.assert_close(plain(x)[..., b:-b, b:-b], shifted(x)[..., b:-b, b:-b], atol=1e-5, rtol=0)
    assert not torch.allclose(plain(x), shifted(x), atol=1e-5)  # the border does differ


def test_srcnn_offset_is_a_bias_reparameterisation() -> None:
    # With reflection padding the equivalence holds at every pixel, border included.
    shifted = _build("srcnn", scale=3, channels=1, offset=0.5)
    plain = _build("srcnn", scale=3, channels=1, offset=0.0)
    with torch.no_grad():
        for m in shifted.body:  # the paper's init has zero biases: make the test non-trivial
            if isinstance(m, nn.Conv2d):
                m.bias.uniform_(-0.1, 0.1)
        plain.load_state_dict(shifted.state_dict())
        first, last = plain.body[1], plain.body[-1]
        first.bias -= 0.5 * first.weight.sum(dim=(1, 2, 3))
        last.bias += 0.5
    x = torch.rand(2, 1, 17, 19)
    torch.testing.assert_close(plain(x), shifted(x), atol=1e-5, rtol=0)


def test_transposed_upsampler_size_for_odd_scale() -> None:
    up = TransposedConvUp(4, 2, 3)
    assert up(torch.rand(1, 4, 5, 7)).shape == (1, 2, 15, 21)


# --------------------------------------------------------------------- summary

def test_macs_per_pixel_known_architectures() -> None:
    # ESPCN x3: (5*5*1*64 + 3*3*64*32 + 3*3*32*9) per LR pixel, 9 output pixels each.
    espcn = _build("espcn", scale=3, channels=1)
    assert macs_per_output_pixel(espcn, 3) == pytest.approx((1600 + 18432 + 2592) / 9)
    # SRCNN 9-5-5 on the HR grid, independent of scale.
    srcnn = _build("srcnn", scale=4, channels=1)
    assert macs_per_output_pixel(srcnn, 4) == pytest.approx(81 * 64 + 25 * 64 * 32 + 25 * 32)
    assert count_params(srcnn) == 57281  # the published "57K"


@pytest.mark.slow
def test_models_overview_covers_every_model() -> None:
    records = {r["name"]: r for r in models_overview()}
    # Every shipped model (restorers too, with their task), then every architecture.
    assert set(records) == {e.name for e in zoo.shipped()} | set(kakudai.list_models())
    for e in zoo.shipped():  # described as shipped, not with the architecture's defaults
        rec = records[e.name]
        assert rec["task"] == e.task and rec["arch"] == e.arch, e.name
        s = 1 if e.task != "upscale" else int(e.present_scales()[0]) if e.scales else 2
        assert rec["params"][s] == count_params(load_model(e.name, None if s == 1 else s)), e.name
    if zoo.ZOO["unet-noise"].present():  # the 4-block shipped file, not the 2-block default
        assert records["unet-noise"]["params"][1] == 2_003_747
        assert "unet-noise-gray" in format_overview(list(records.values()))
    assert records["bicubic"]["macs_per_px"][2] == 0
    for r in records.values():
        for v in r["macs_per_px"].values():
            assert v is None or v >= 0


def test_layer_table_totals() -> None:
    model = _build("ksr", scale=[2, 3])
    text = format_layer_table(model, 3, (16, 16))
    assert "tails.x3" in text and "tails.x2" not in text
    unused = count_params(model.tails["x2"])
    assert f"({unused:,} in layers not run at x3)" in text


@pytest.mark.slow
def test_cli_models(capsys) -> None:
    from kakudai.cli import main

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in kakudai.list_models():
        assert f"\n{name} " in out or f"\n{name}  " in out, name
    for e in zoo.shipped():  # restorers are listed too, each with its task
        assert any(line.startswith(f"{e.name} ") and f" {e.task} " in line for line in out.splitlines()), e.name
    assert main(["models", "espcn", "--scale", "3", "--input", "16x12"]) == 0
    out = capsys.readouterr().out
    assert "upsample.conv" in out and "(1, 1, 48, 36)" in out and "parameters: 22,729" in out
    for e in zoo.shipped():  # the layer table of every shipped model, restorers included
        s = None if e.task != "upscale" else e.present_scales()[0] if e.scales else 2.0
        at = [] if s is None else ["--scale", f"{s:g}"]
        for spec in (e.name, str(e.path(s))):
            assert main(["models", spec, *at, "--input", "16x12"]) == 0, spec
            text = capsys.readouterr().out
            assert f"parameters: {count_params(load_model(e.name, s)):,}" in text, spec
    assert main(["models", "no-such-model"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("kakudai: error: no-such-model: unknown model") and err.count("\n") == 1
    if (WEIGHTS_DIR / "implicit-fast.safetensors").exists():  # a shipped file's own name
        assert main(["models", "implicit-fast", "--scale", "2.5", "--input", "16x16"]) == 0
        want = count_params(load_model("implicit-fast", 2.5))
        assert f"parameters: {want:,}" in capsys.readouterr().out

"""The model contract: every model declares a valid ModelSpec, creation rejects a missing
or invalid one, the spec says what the model does, and nothing outside kakudai/models
probes model attributes instead of reading it."""

from __future__ import annotations

import math
import re
from dataclasses import fields
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import kakudai
from kakudai.models import registry
from kakudai.models.calling import call_network, model_forward, single_scale
from kakudai.models.shrink import IntegerThenShrink
from kakudai.models.spec import ModelSpec, SpecError, require_spec

# Small builds of every family (the spec's values follow the arguments; tests stay fast).
SMALL: dict[str, dict] = {
    "espcn": {"n1": 8, "n2": 4},
    "implicit": {"width": 8, "blocks": 1, "basis": 4, "pos_hidden": 8},
    "ksr": {"width": 8, "blocks": 2},
    "ksr-fast": {"width": 8, "blocks": 1},
    "rednet": {"depth": 4, "width": 8},
    "srcnn": {"n1": 8, "n2": 4},
    "unet": {"widths": (4, 8, 8), "blocks": 1},
}
# Variants whose spec differs in a field the defaults leave alone.
VARIANTS: list[tuple[str, dict]] = [
    ("ksr", {"scale": [2, 3, 4]}),
    ("rednet", {"level_map": True, "unshuffle": 2}),
    ("rednet", {"scale": 2, "channels": 1}),
    ("unet", {"level_map": True, "channels": 1}),
    ("implicit", {"decoder": "mlp", "hidden": (8, 8)}),
    ("implicit", {"base": "integer", "base_scales": (2, 3)}),
]


def _cases() -> list[tuple[str, dict]]:
    return [(n, {}) for n in kakudai.list_models()] + [c for c in VARIANTS if c[0] in kakudai.list_models()]


CASES = _cases()
IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in a.items()) or 'default'}" for n, a in CASES]


def _build(name: str, args: dict) -> nn.Module:
    torch.manual_seed(0)
    return kakudai.create_model(name, **{**SMALL.get(name, {}), **args}).eval()


def _scales_to_try(spec: ModelSpec) -> list[float]:
    return [float(s) for s in spec.scales] if not spec.any_scale else [1.0, 2.0, 3.0, 2.5]


def _input(spec: ModelSpec, h: int, w: int) -> tuple[torch.Tensor, float | None]:
    """An image for the model and the level its plane needs (None without one)."""
    return torch.rand(1, spec.channels, h, w), (0.3 if spec.level_map else None)


# ------------------------------------------------------------------ valid everywhere
@pytest.mark.parametrize("name", kakudai.list_models())
def test_every_registered_model_declares_a_valid_spec(name: str) -> None:
    model = kakudai.create_model(name)
    spec = require_spec(model)
    assert spec is model.spec and isinstance(spec, ModelSpec)
    with pytest.raises(AttributeError):  # frozen: a model's contract is not edited after the fact
        spec.channels = 2  # type: ignore[misc]


@pytest.mark.parametrize("name,args", CASES, ids=IDS)
def test_spec_matches_behaviour(name: str, args: dict) -> None:
    """Output size at every declared scale (``"any"``: integer and fractional ones), output
    channels, input planes (image + level plane), padding multiple and receptive radius."""
    model = _build(name, args)
    spec = model.spec
    h, w = 4 * spec.pad_multiple + 13, 4 * spec.pad_multiple + 11  # not multiples of it (m <= 4)
    for s in _scales_to_try(spec):
        x, level = _input(spec, h, w)
        with torch.no_grad():
            y = model_forward(model, x, s, level=level)
        assert y.shape == (1, spec.channels, math.ceil(h * s - 1e-9), math.ceil(w * s - 1e-9)), s
    if not spec.any_scale:
        with pytest.raises(ValueError):
            model_forward(model, _input(spec, h, w)[0], max(spec.scales) + 1)
    if spec.level_map:
        with pytest.raises(ValueError, match="needs a level"):
            model_forward(model, _input(spec, h, w)[0], 1)
    _check_radius(model, spec)
    _check_pad_multiple(model, spec)


def _network_input(spec: ModelSpec, h: int, w: int) -> torch.Tensor:
    return torch.rand(1, spec.in_channels, h, w)


def _check_radius(model: nn.Module, spec: ModelSpec) -> None:
    """Changing one pixel of the network's input leaves every output pixel further than
    ``receptive_radius`` from it (in the network's input pixels) unchanged."""
    r, m = spec.receptive_radius, spec.pad_multiple
    side = m * math.ceil((2 * r + 12) / m)
    s = float(spec.scales[0]) if not spec.any_scale else (1.0 if spec.pre_upsampled else 2.0)
    x = _network_input(spec, side, side)
    p = side // 2
    x2 = x.clone()
    x2[:, : spec.channels, p, p] += 0.5
    with torch.no_grad():
        d = (call_network(model, x2, s) - call_network(model, x, s)).abs().amax(dim=(0, 1))
    pos = (torch.arange(d.shape[0], dtype=torch.float64) + 0.5) / s - 0.5  # output -> input position
    far = (pos - p).abs() > r + 0.5
    assert d[far].max() == 0 and d[:, far].max() == 0, "the output reaches beyond receptive_radius"
    assert d.max() > 0


def _check_pad_multiple(model: nn.Module, spec: ModelSpec) -> None:
    """Shifting the input by ``pad_multiple`` pixels shifts the output by as much, away from
    the border (the network works on that block grid); by one pixel less it does not when
    the multiple is above 1 (so the declared multiple is needed, not just enough)."""
    r, m = spec.receptive_radius, spec.pad_multiple
    s = float(spec.scales[0]) if not spec.any_scale else (1.0 if spec.pre_upsampled else 2.0)
    if s != int(s):
        return
    side = m * math.ceil((2 * r + 16) / m) + 2 * m
    x = _network_input(spec, side, side)
    x[:, spec.channels:] = 0.3  # the level plane is constant

    def shifted_diff(k: int) -> float:
        with torch.no_grad():
            a = call_network(model, x[..., k:, k:], s)
            b = call_network(model, x, s)[..., int(k * s):, int(k * s):]
        n = int((side - k) * s)
        inner = slice(int((r + 1) * s), n - int((r + 1 + m) * s))
        return float((a[..., inner, inner] - b[..., : a.shape[-2], : a.shape[-1]][..., inner, inner]).abs().max())

    assert shifted_diff(m) < 1e-5
    if m > 1:
        assert shifted_diff(m - 1) > 1e-4


# ------------------------------------------------------------------ rejected specs
def _valid(**kw) -> dict:
    return {"scale": 2, "scales": (2,), "channels": 3, "receptive_radius": 1,
            "feature_floats_per_pixel": 10.0, **kw}


@pytest.mark.parametrize("kw,what", [
    ({"scales": ()}, "non-empty"),
    ({"scales": (0,)}, "positive integers"),
    ({"scales": (2.5,), "scale": 2.5}, "positive integers"),
    ({"scales": (2, 2)}, "repeat"),
    ({"scale": 3}, "not one of scales"),
    ({"scale": -1.0, "scales": "any", "takes_scale": True}, "positive number"),
    ({"channels": 0}, "channels"),
    ({"pad_multiple": 0}, "pad_multiple"),
    ({"receptive_radius": -1}, "receptive_radius"),
    ({"receptive_radius": 1.5}, "receptive_radius"),
    ({"feature_floats_per_pixel": 0.0}, "feature_floats_per_pixel"),
    ({"pre_upsampled": 1}, "bool"),
    ({"pre_upsampled": True, "scales": "any", "takes_scale": True}, "does not take the scale"),
    ({"pre_upsampled": True}, "must be 'any'"),
    ({"scales": "any"}, "must take the scale"),
    ({"scales": (2, 3)}, "serves one scale"),
])
def test_invalid_spec_raises(kw: dict, what: str) -> None:
    with pytest.raises(SpecError, match=what):
        ModelSpec(**_valid(**kw))


class _Plain(nn.Module):
    def __init__(self, spec=None, scale: int = 2):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        if spec is not None:
            self.spec = spec

    def forward(self, x: torch.Tensor, scale=None) -> torch.Tensor:
        return self.conv(x)


def _bypassed(**kw) -> ModelSpec:
    """A ModelSpec with invalid values assembled around its checks."""
    spec = object.__new__(ModelSpec)
    for f in fields(ModelSpec):
        object.__setattr__(spec, f.name, _valid(**kw).get(f.name, f.default))
    return spec


@pytest.mark.parametrize("spec,what", [
    (None, "must set self.spec"),
    ({"scale": 2, "scales": (2,)}, "found dict"),
    ("bypassed-pad", "pad_multiple"),
    ("bypassed-radius", "receptive_radius"),
    (ModelSpec(**_valid(scales=(2, 3), takes_scale=True)), "for_scale"),
])
def test_create_model_rejects_a_missing_or_invalid_spec(spec, what: str) -> None:
    if spec == "bypassed-pad":
        spec = _bypassed(pad_multiple=0)
    elif spec == "bypassed-radius":
        spec = _bypassed(receptive_radius=-2)
    name = "test-spec-model"
    registry.register(name)(lambda **kw: _Plain(spec, **kw))
    try:
        with pytest.raises(SpecError, match=what):
            kakudai.create_model(name)
    finally:
        registry._REGISTRY.pop(name)


# ------------------------------------------------------------------ wrappers
def test_wrapper_specs() -> None:
    """for_scale, the gray copy and integer-then-shrink declare what they do."""
    multi = _build("ksr", {"scale": [2, 3, 4]})
    assert multi.spec.scales == (2, 3, 4) and multi.spec.multi_scale
    one = single_scale(multi, 3)
    assert one.spec.scales == (3,) and one.spec.scale == 3 and not one.spec.multi_scale
    assert single_scale(one, 3) is one
    gray = _build("unet", {"level_map": True}).to_gray()
    assert gray.spec.channels == 1 and gray.spec.in_channels == 2 and gray.spec.pad_multiple == 4
    base = _build("ksr", {"scale": [2, 3]})
    shrink = IntegerThenShrink(lambda n: single_scale(base, n), 2.5)
    spec = shrink.spec
    assert spec.any_scale and spec.takes_scale and not spec.pre_upsampled
    assert spec.channels == 1 and spec.receptive_radius == base.spec.receptive_radius + 2
    x = torch.rand(1, 1, 9, 7)
    with torch.no_grad():
        assert model_forward(shrink, x, 2.5).shape == (1, 1, 23, 18)


def test_spec_round_trips_through_json() -> None:
    for name, args in CASES:
        spec = _build(name, args).spec
        assert ModelSpec.from_dict(spec.to_dict()) == spec


# ------------------------------------------------------------------ one place to read it
# The spec's fields, and what kakudai.models.calling / .registry read for everyone else.
MODEL_ATTRS = tuple(f.name for f in fields(ModelSpec)) + (
    "in_channels", "for_scale", "gray_companion", "weights_meta", "arch", "arch_args")


NAMED = re.compile(r"\b(?:getattr|hasattr)\(\s*[\w.\[\]]+\s*,\s*[\"'](%s)[\"']" % "|".join(MODEL_ATTRS))
# Any attribute of something named like a model, by a computed name too (getattr(model, k)).
ON_MODEL = re.compile(r"\b(?:getattr|hasattr)\(\s*(?:self\.)?(?:model|net|m|src|base|runner)\s*,")


def _probes(line: str) -> bool:
    return bool(NAMED.search(line) or ON_MODEL.search(line))


@pytest.mark.parametrize("line,probes", [
    ('r = int(getattr(model, "receptive_radius", 0))', True),
    ('if getattr(model, "pre_upsampled", False):', True),
    ('multi = len(getattr(self.model, "scales", ())) > 1', True),
    ('have = [int(v) for v in getattr(src, "scales", None) or [getattr(src, "scale", None)]]', True),
    ('companion = getattr(model, "gray_companion", None)', True),
    ('if scales is not None and len(scales) > 1 and hasattr(m, "for_scale"):', True),
    ("print(f\"{getattr(model, 'arch', 'model')}\")", True),
    ('v = getattr(model, k)', True),
    ('if getattr(args, "task", "sr") != "sr":', False),
    ('reason = getattr(e, "reason", str(e))', False),
    ('power = float(getattr(cfg, "jpeg_quality_power", 1.0))', False),
])
def test_the_probe_scan_recognises_model_reads(line: str, probes: bool) -> None:
    assert _probes(line) is probes


def test_no_attribute_probing_of_models_outside_models_package() -> None:
    """``getattr(model, "channels", 3)``-style reads (and hasattr) of contract fields
    belong to kakudai/models only; everything else reads ``model.spec``."""
    root = Path(kakudai.__file__).parent
    hits = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).as_posix()
        if rel.startswith("kakudai/models/"):
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if _probes(line):
                hits.append(f"{rel}:{i}: {line.strip()}")
    assert not hits, "read model.spec instead:\n" + "\n".join(hits)

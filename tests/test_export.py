"""ONNX export and the onnxruntime / bf16 backends (kakudai.infer.export).

Parity is checked on random weights that are perturbed away from their
initialisation, so every layer contributes to the output (an untrained SRCNN
outputs ~1e-5 everywhere, which would make any comparison pass).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import numpy as np
import onnx
import pytest
import torch

from kakudai.checkpoint import save_model
from kakudai.infer.export import (Bf16Autocast, ExportError, OnnxModel, export_onnx, with_backend)
from kakudai.infer.upscale import model_forward, super_resolve
from kakudai.registry import create_model

# Every registered network that runs at a fixed integer scale (implicit is
# arbitrary-scale and not exportable; bicubic has no network).
CONV_MODELS = ["ksr", "ksr-fast", "espcn", "srcnn", "rednet"]
SIZES = [(1, 23, 31), (2, 16, 9), (1, 40, 17)]  # (batch, h, w): odd, non-square, batched


def _random_model(name: str, scale: int = 3):
    torch.manual_seed(0)
    m = create_model(name, scale=scale).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return m


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """name -> (torch model, OnnxModel); each model exported once for the module."""
    out = {}
    d = tmp_path_factory.mktemp("onnx")
    for name in CONV_MODELS:
        m = _random_model(name)
        path = export_onnx(m, d / f"{name}.onnx", scale=3)
        out[name] = (m, OnnxModel(path, threads=1, reference=m))
    return out


@pytest.mark.parametrize("name", CONV_MODELS)
@pytest.mark.slow
def test_onnx_network_matches_torch_on_several_sizes(exported, name):
    m, om = exported[name]
    for b, h, w in SIZES:
        x = torch.rand(b, m.channels, h, w, generator=torch.Generator().manual_seed(h * w))
        with torch.inference_mode():
            ref = model_forward(m, x, 3)
            got = model_forward(om, x, 3)
        assert got.shape == ref.shape
        assert ref.abs().max() > 0.05  # the comparison is not between near-zero outputs
        assert (got - ref).abs().max().item() <= 1e-4


@pytest.mark.slow
def test_onnx_file_has_dynamic_height_width_and_describes_itself(exported, tmp_path):
    m, om = exported["ksr"]
    proto = onnx.load(str(om.path))
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.HasField("dim_value") for d in dims] == [False, True, False, False]  # N, C=1, H, W
    assert dims[1].dim_value == 1
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["format"] == "kakudai.onnx.v1" and meta["arch"] == "ksr" and meta["export_scale"] == "3"
    assert om.spec == replace(m.spec, scale=3, scales=(3,))  # the exported tail's spec, from the file


@pytest.mark.slow
def test_full_pipeline_on_onnxruntime_matches_torch(exported):
    # Y-only (ksr) and pre-upsampled (srcnn) models, RGB and gray, tiled and whole.
    g = torch.Generator().manual_seed(5)
    for name in ("ksr", "srcnn"):
        m, om = exported[name]
        for c in (3, 1):
            x = torch.rand(1, c, 21, 26, generator=g)
            for tile in (None, 12):
                ref = super_resolve(m, x, 3, tile=tile)
                got = super_resolve(om, x, 3, tile=tile)
                assert (got - ref).abs().max().item() <= 1e-4, (name, c, tile)


@pytest.mark.slow
def test_with_backend_onnxruntime_caches_the_export_and_checks_the_scale(monkeypatch, tmp_path):
    monkeypatch.setenv("KAKUDAI_CACHE", str(tmp_path))
    m = _random_model("ksr-fast", scale=2)
    om = with_backend(m, 2, "onnxruntime", threads=1)
    assert isinstance(om, OnnxModel)
    files = list((tmp_path / "onnx").glob("*.onnx"))
    assert len(files) == 1
    mtime = files[0].stat().st_mtime_ns
    assert with_backend(m, 2, "onnxruntime").path == om.path  # reused, not re-exported
    assert files[0].stat().st_mtime_ns == mtime
    with pytest.raises(ValueError):
        om(torch.rand(1, 1, 8, 8), scale=3)
    with pytest.raises(ExportError):
        with_backend(m, 3, "onnxruntime")  # a x2 model cannot serve x3
    with pytest.raises(ExportError):
        with_backend(m, 2, "onnxruntime", precision="bf16")
    with pytest.raises(ValueError):
        with_backend(m, 2, "tensorrt")


def test_bicubic_has_nothing_to_export(tmp_path):
    b = create_model("bicubic", scale=3)
    with pytest.raises(ExportError, match="no network"):
        export_onnx(b, tmp_path / "b.onnx", 3)
    assert with_backend(b, 3, "onnxruntime") is b  # stays on torch
    with pytest.raises(ExportError):
        export_onnx(_random_model("espcn", 3), tmp_path / "e.onnx", 2.5)


def test_bf16_autocast_is_close_but_really_reduced_precision():
    # The initialised (not perturbed) KSR: a small residual over its anchor, like a
    # trained one; perturbed random weights amplify bf16 rounding unrealistically.
    torch.manual_seed(0)
    m = create_model("ksr", scale=2).eval()
    bm = with_backend(m, 2, precision="bf16")
    assert isinstance(bm, Bf16Autocast) and bm.spec == m.spec
    x = torch.rand(1, 3, 20, 24, generator=torch.Generator().manual_seed(1))
    ref = super_resolve(m, x, 2)
    got = super_resolve(bm, x, 2)
    assert got.dtype == torch.float32 and got.shape == ref.shape
    diff = (got - ref).abs()
    assert diff.max().item() > 1e-6  # bf16 convolutions did run
    assert diff.max().item() < 1 / 255 and diff.mean().item() < 1e-3  # under one 8-bit level


@pytest.mark.slow
def test_cli_export_writes_a_runnable_file(tmp_path):
    m = _random_model("espcn", scale=2)
    weights = save_model(m, tmp_path / "espcn_x2.safetensors")
    out = tmp_path / "e.onnx"
    r = subprocess.run([sys.executable, "-m", "kakudai", "export", str(weights), "--scale", "2",
                        "--onnx", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert out.exists() and "wrote" in r.stdout
    om = OnnxModel(out, threads=1)
    x = torch.rand(1, 1, 13, 19)
    with torch.inference_mode():
        np.testing.assert_allclose(om(x).numpy(), m(x).numpy(), atol=1e-4)
    bad = subprocess.run([sys.executable, "-m", "kakudai", "export", "bicubic", "--scale", "2",
                          "--onnx", str(tmp_path / "b.onnx")], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1
    assert bad.stderr.startswith("kakudai: error:") and len(bad.stderr.strip().splitlines()) == 1

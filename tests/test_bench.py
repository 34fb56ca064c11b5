"""``kakudai bench`` and the fast paths it measures.

Timings are not asserted (the machine may be shared); the arithmetic around
them is: multiply-adds against hand counts, rates against the times they
come from, peak memory against a known allocation.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from kakudai.bench import bench_model, count_macs, measure_peak, peak_rss_bytes, reset_peak_rss
from kakudai.checkpoint import save_model
from kakudai.zoo import load_model
from kakudai.ops.resize import imresize_np, imresize_torch, phase_filters
from kakudai.registry import create_model


# ------------------------------------------------------------------ multiply-adds
@pytest.mark.slow
def test_macs_match_hand_counts():
    # KSR (Y-only, width w, b blocks), per low-resolution pixel: head 1->w, 2b body
    # convs w->w, body_end w->w, tail w->s^2; all 3x3.
    w, b, s = 48, 8, 3
    per_lr = 9 * (1 * w + 2 * b * w * w + w * w + w * s * s)
    m = create_model("ksr", scale=s)
    assert count_macs(m, s, (90, 120)) == per_lr * 30 * 40
    assert count_macs(m, s, (90, 120), tta=True) == 8 * per_lr * 30 * 40
    # SRCNN 9-5-5 (64/32, Y-only) runs on the bicubic-upsampled image: per output pixel.
    per_hr = 81 * 1 * 64 + 25 * 64 * 32 + 25 * 32 * 1
    assert count_macs(create_model("srcnn", scale=2), 2, (40, 50)) == per_hr * 40 * 50
    assert count_macs(create_model("bicubic", scale=2), 2, (40, 50)) == 0


def test_peak_measurement_reports_both_kernels():
    p = measure_peak(size="quick", repeat=2)
    assert p["matmul_gflops"] > 0.1 and p["conv3x3_gflops"] > 0.1
    assert p["peak_gflops"] == max(p["matmul_gflops"], p["conv3x3_gflops"])


def test_peak_rss_sees_a_large_allocation():
    import mmap
    # A fresh anonymous mapping, every page written: resident for certain. (A tensor
    # could reuse heap memory that earlier tests freed and that is still resident.)
    n = 48 * 2**20
    reset_peak_rss()
    before = peak_rss_bytes()
    with mmap.mmap(-1, n) as a:
        for i in range(0, n, 4096):
            a[i] = 1
        after = peak_rss_bytes()
    assert after - before > 40 * 2**20


# ------------------------------------------------------------------ bench itself
@pytest.mark.slow
def test_bench_model_fields_are_consistent():
    r = bench_model("ksr-fast", scale=2, size=(24, 16), repeat=3, warmup=1, peak_gflops=100.0)
    assert r.output_wh == (48, 32) and r.input_wh == (24, 16)
    assert r.weights.startswith(("random", "shipped")) and r.arch == "ksr-fast"
    assert len(r.times_ms) == 3 and r.min_ms <= r.q1_ms <= r.median_ms <= r.q3_ms <= r.max_ms
    assert r.mp_per_s == pytest.approx(48 * 32 / 1e6 / (r.median_ms / 1e3))
    assert r.macs == count_macs(create_model("ksr-fast", scale=2), 2, (32, 48))
    assert r.gflops == pytest.approx(2 * r.macs / (r.median_ms / 1e3) / 1e9)
    assert r.peak_fraction == pytest.approx(r.gflops / 100.0)
    assert r.peak_rss_mb > 10 and r.backend == "torch" and r.precision == "fp32"


def test_bench_integer_then_shrink_at_a_non_integer_scale():
    r = bench_model("ksr-fast+shrink", scale=2.5, size=(24, 16), repeat=2, warmup=1, peak_gflops=100.0)
    assert r.output_wh == (60, 40) and "shrink" in r.weights and r.macs > 0


@pytest.mark.slow
def test_bench_cli_json_on_a_tiny_frame():
    cmd = [sys.executable, "-m", "kakudai", "bench", "--model", "bicubic", "espcn", "--scale", "2",
           "--size", "32x20", "--repeat", "2", "--warmup", "1", "--peak", "quick", "--json"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout.strip().splitlines()[-1])
    assert rep["peak"]["peak_gflops"] > 0 and rep["machine"]["threads"] >= 1
    rows = {row["model"]: row for row in rep["results"]}
    assert set(rows) == {"bicubic", "espcn"}
    for row in rows.values():
        assert row["output_wh"] == [64, 40] and row["median_ms"] > 0 and row["mp_per_s"] > 0
    assert rows["bicubic"]["macs"] == 0 and rows["bicubic"]["peak_fraction"] is None
    assert rows["espcn"]["macs"] > 0 and 0 < rows["espcn"]["peak_fraction"]


@pytest.mark.slow
def test_bench_cli_rejects_unknown_model_and_bad_size():
    for extra in (["--model", "nosuch"], ["--size", "wide"], ["--model", "ksr", "--scale", "2.5"]):
        r = subprocess.run([sys.executable, "-m", "kakudai", "bench", "--peak", "quick", *extra],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 1
        assert r.stderr.startswith("kakudai: error:") and len(r.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------------ fast paths
@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (7, 5), (19, 26)])
def test_integer_upscale_fast_path_matches_matlab_reference(scale, shape):
    img = np.random.default_rng(scale).random(shape)
    ref = imresize_np(img, scale)
    got = imresize_torch(torch.from_numpy(img).float()[None, None], scale=scale)[0, 0].double().numpy()
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=2e-6)


@pytest.mark.slow
def test_integer_upscale_phase_filters_and_gradients():
    for s in (2, 3, 4):
        for _, w in phase_filters(s):
            assert abs(sum(w) - 1.0) < 1e-12 and len(w) <= 4
    x = torch.rand(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: imresize_torch(t, scale=3), (x,))


def test_loaded_models_are_channels_last_and_give_the_same_output(tmp_path):
    torch.manual_seed(0)
    m = create_model("rednet", scale=2, channels=3, depth=4, width=16).eval()
    loaded = load_model(save_model(m, tmp_path / "r.safetensors"))
    convs = [mod for mod in loaded.modules() if isinstance(mod, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    x = torch.rand(1, 3, 17, 23)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), m(x), atol=1e-5, rtol=0)


@pytest.mark.slow
def test_markdown_table_and_heap_setting():
    from kakudai.bench import format_markdown, run_bench

    rep = run_bench(["bicubic", "ksr-fast"], scale=2, size=(20, 12), repeat=1, warmup=1, peak_size="quick")
    md = format_markdown([rep])
    lines = md.splitlines()
    assert lines[0].startswith("| model | scale |") and len([ln for ln in lines if ln.startswith("| ")]) == 3
    assert "| bicubic | x2 | 20x12 -> 40x24 |" in md and "Peak per run" in md
    # glibc only, and process-wide: check it in a child process.
    code = ("from kakudai.bench import retain_freed_memory, machine_info; "
            "print(retain_freed_memory(), machine_info()['malloc'])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.split() in (["True", "retain"], ["False", "default"])

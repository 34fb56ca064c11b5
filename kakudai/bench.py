"""``kakudai bench``: wall time of whole upscale calls against the machine's own peak.

For each model it times :func:`~kakudai.infer.upscale.super_resolve` on one
8-bit RGB frame (uint8 in, uint8 out: the work ``kakudai upscale`` does per
image, colour conversion, chroma and quantisation included) after warm-up,
and relates the model's multiply-adds to a peak measured on the spot:

* ``GFLOP/s`` = 2 x (network multiply-adds) / median wall time. Only the
  network's Conv/Linear layers are counted (:mod:`kakudai.summary`), so the
  rest of the pipeline shows up as lost efficiency, as it should;
* the peak is the better of a large fp32 (or bf16) matrix product and a large
  3x3 convolution, both timed here with the same thread count;
* peak memory is the process's resident-set high-water mark (``VmHWM``),
  reset before each model where Linux allows it.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn

__all__ = ["BenchResult", "measure_peak", "count_macs", "bench_model", "run_bench", "format_report",
           "format_markdown",
           "format_header", "format_footer", "format_row", "format_row_header", "load_for_bench",
           "machine_info", "peak_rss_bytes", "reset_peak_rss", "retain_freed_memory", "DEFAULT_MODELS"]

DEFAULT_MODELS = ("bicubic", "ksr", "ksr-fast")
PEAK_SIZES = {"full": (2048, 128, 256), "quick": (512, 32, 64)}  # matmul n, conv channels, conv side


# ----------------------------------------------------------------------- memory
def _status_kb(field_name: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Reset the resident-set high-water mark (Linux ``clear_refs`` 5). True if it worked."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    """Resident-set high-water mark of this process in bytes (since the last reset)."""
    kb = _status_kb("VmHWM")
    if kb is not None:
        return kb * 1024
    import resource  # not resettable: the peak since process start
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if platform.system() == "Darwin" else r * 1024


def _rss_bytes() -> int:
    kb = _status_kb("VmRSS")
    return kb * 1024 if kb is not None else peak_rss_bytes()


def retain_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse instead of returning it to the kernel.

    By default every tensor larger than the mmap threshold is a fresh ``mmap``
    whose pages fault in (and are zeroed) on first touch, and is ``munmap``-ed
    when freed; a network allocates a few such feature maps per layer, so part
    of every call is spent in page faults (an out-of-place ReLU on a 48 x 180 x 320
    map: 16 ms, in place: 2.6 ms). With mmap disabled and trimming raised, freed
    blocks are reused from the heap. Process-wide and irreversible: meant for
    the CLI's inference commands, not for library import. Returns True if set
    (glibc only).
    """
    import ctypes
    import ctypes.util

    if platform.system() != "Linux":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_max = -1, -4  # mallopt parameter numbers from <malloc.h>
        ok = bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))
    except (OSError, AttributeError):  # not glibc (musl, ...)
        return False
    global _MALLOC
    _MALLOC = "retain" if ok else _MALLOC
    return ok


_MALLOC = "default"  # what retain_freed_memory() did to this process


# ----------------------------------------------------------------------- timing
def _times(fn: Callable[[], Any], repeat: int, warmup: int) -> tuple[list[float], float]:
    """(wall times of ``repeat`` calls after ``warmup`` calls, time of the first call), seconds."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    for _ in range(max(0, warmup - 1)):
        fn()
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out, first


@torch.inference_mode()
def measure_peak(precision: str = "fp32", size: str = "full", repeat: int = 5) -> dict[str, float]:
    """Peak arithmetic rate of this machine (GFLOP/s) with the current thread count.

    Best of ``repeat`` runs of an n x n matrix product (MKL) and of a 3x3, C -> C
    convolution on a (1, C, S, S) channels-last input (oneDNN), in ``precision``.
    Returns both and ``peak_gflops`` = the higher.
    """
    n, c, side = PEAK_SIZES[size]
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    g = torch.Generator().manual_seed(0)
    a = torch.rand(n, n, generator=g).to(dtype)
    b = torch.rand(n, n, generator=g).to(dtype)
    mm_t, _ = _times(lambda: torch.mm(a, b), repeat, warmup=2)
    conv = nn.Conv2d(c, c, 3, padding=1).eval().to(dtype).to(memory_format=torch.channels_last)
    x = torch.rand(1, c, side, side, generator=g).to(dtype).contiguous(memory_format=torch.channels_last)
    cv_t, _ = _times(lambda: conv(x), repeat, warmup=2)
    mm = 2.0 * n ** 3 / min(mm_t) / 1e9
    cv = 2.0 * (c * 9) * c * side * side / min(cv_t) / 1e9
    return {"matmul_gflops": mm, "conv3x3_gflops": cv, "peak_gflops": max(mm, cv),
            "precision": precision, "matmul_n": n, "conv_shape": [1, c, side, side]}


# ----------------------------------------------------------------------- MACs
def count_macs(model: nn.Module, scale: float, out_hw: tuple[int, int], tta: bool = False) -> int:
    """Network multiply-adds of one upscale to an ``out_hw`` output.

    Uses :func:`kakudai.summary.macs_per_output_pixel` (forward hooks on
    Conv2d / ConvTranspose2d / Linear during a real forward of a small input),
    which is exact for these same-padded networks; x8 with TTA.
    """
    from .summary import macs_per_output_pixel

    if not any(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)) for m in model.modules()):
        return 0
    per_px = macs_per_output_pixel(model, scale)
    return int(round(per_px * out_hw[0] * out_hw[1] * (8 if tta else 1)))


# ----------------------------------------------------------------------- models
def load_for_bench(name: str, scale: float) -> tuple[nn.Module, str]:
    """(model ready for inference, where its weights came from).

    Shipped weights or a ``.safetensors`` path when there are some; otherwise the
    architecture with random weights, which runs at the same speed.
    """
    from .checkpoint import for_inference
    from .registry import create_model
    from .zoo import ALIASES, ZOO, is_file, load_model, resolve

    if is_file(name):
        return load_model(name, scale, task="upscale"), str(name)
    if name.endswith("+shrink"):  # the integer-then-shrink baseline that arbitrary-scale models must beat
        return load_model(name, scale, task="upscale"), "shipped, then MATLAB bicubic shrink"
    real = name  # an architecture with no shipped weights under its name: random weights
    if name in ALIASES or name in ZOO or name == "bicubic":
        served = resolve(name, scale, task="upscale")
        if served.name == "bicubic":
            return for_inference(create_model("bicubic", scale=scale)), "none"
        if served.path is not None:
            return load_model(served.name, scale), "shipped"
        e = served.entry
        if e is not None and e.scales and not float(scale).is_integer():  # fixed scales only
            raise ValueError(f"{name} runs at integer scales only; bench '{name}+shrink' "
                             f"(integer model, then bicubic shrink) or 'implicit' at x{scale:g}")
        real = e.arch if e is not None else served.name
    torch.manual_seed(0)
    try:
        model = create_model(real, scale=int(scale) if float(scale).is_integer() else scale)
    except TypeError:
        model = create_model(real)
    return for_inference(model), "random-init (no shipped weights)"


# ----------------------------------------------------------------------- bench
@dataclass
class BenchResult:
    """One model's timing; times in milliseconds, rates per second."""

    model: str
    arch: str
    weights: str
    scale: float
    backend: str
    precision: str
    memory_format: str
    compiled: bool
    tta: bool
    threads: int
    input_wh: tuple[int, int]
    output_wh: tuple[int, int]
    times_ms: list[float] = field(default_factory=list)
    first_call_ms: float = 0.0
    median_ms: float = 0.0
    min_ms: float = 0.0
    max_ms: float = 0.0
    q1_ms: float = 0.0
    q3_ms: float = 0.0
    mp_per_s: float = 0.0
    macs: int = 0
    gflops: float = 0.0
    peak_fraction: float | None = None
    peak_rss_mb: float = 0.0
    rss_increase_mb: float = 0.0


def bench_model(name: str, scale: float = 3, size: tuple[int, int] = (640, 360), repeat: int = 5,
                warmup: int = 2, backend: str = "torch", precision: str = "fp32",
                memory_format: str = "channels_last", compile: bool = False, tta: bool = False,
                peak_gflops: float | None = None, seed: int = 0) -> BenchResult:
    """Time ``repeat`` whole upscale calls of a ``size`` = (width, height) RGB frame.

    ``backend``/``precision`` go through :func:`kakudai.infer.export.with_backend`;
    ``memory_format`` ``contiguous`` undoes the channels-last layout of loaded
    models (for comparison); ``compile`` wraps the network in ``torch.compile``.
    """
    from .infer.export import with_backend
    from .infer.upscale import super_resolve
    from .models.registry import arch_of

    if memory_format not in ("channels_last", "contiguous"):
        raise ValueError(f"memory_format must be channels_last or contiguous, not {memory_format!r}")
    model, weights = load_for_bench(name, scale)
    if memory_format == "contiguous":
        model = model.to(memory_format=torch.contiguous_format)
    arch = str(arch_of(model) or name)
    runner = with_backend(model, scale, backend, precision)
    used_backend = "onnxruntime" if type(runner).__name__ == "OnnxModel" else "torch"
    if compile:
        runner = _compiled(runner)
    w, h = size
    g = torch.Generator().manual_seed(seed)
    frame = torch.randint(0, 256, (1, 3, h, w), generator=g, dtype=torch.uint8)
    out_shape: list[tuple[int, int]] = []

    def call() -> None:
        y = super_resolve(runner, frame, scale, tile=None, tta=tta, out_dtype=torch.uint8)
        if not out_shape:
            out_shape.append((int(y.shape[-1]), int(y.shape[-2])))

    gc.collect()
    reset_peak_rss()
    rss0 = _rss_bytes()
    times, first = _times(call, repeat, warmup)
    peak = peak_rss_bytes()
    ow, oh = out_shape[0]
    ms = sorted(t * 1000.0 for t in times)
    med = statistics.median(ms)
    q = statistics.quantiles(ms, n=4) if len(ms) >= 2 else [ms[0]] * 3
    macs = count_macs(model, scale, (oh, ow), tta)
    gflops = 2.0 * macs / (med / 1000.0) / 1e9
    return BenchResult(
        model=name, arch=arch, weights=weights, scale=float(scale), backend=used_backend,
        precision=precision, memory_format=memory_format, compiled=compile, tta=tta,
        threads=torch.get_num_threads(), input_wh=(w, h), output_wh=(ow, oh),
        times_ms=[round(t, 3) for t in ms], first_call_ms=first * 1000.0, median_ms=med,
        min_ms=ms[0], max_ms=ms[-1], q1_ms=q[0], q3_ms=q[-1], mp_per_s=ow * oh / 1e6 / (med / 1000.0),
        macs=macs, gflops=gflops,
        peak_fraction=(gflops / peak_gflops) if peak_gflops and macs else None,
        peak_rss_mb=peak / 2**20, rss_increase_mb=max(0, peak - rss0) / 2**20)


def _compiled(model: nn.Module) -> nn.Module:
    """The network under ``torch.compile`` (inductor, frozen weights), spec kept."""
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True  # constant-fold weights, fuse conv + pointwise (oneDNN)

    class Compiled(nn.Module):
        def __init__(self, m: nn.Module):
            super().__init__()
            self.model = m
            self.fn = torch.compile(m, dynamic=False)
            self.spec = m.spec

        def forward(self, x: torch.Tensor, *a: Any, **k: Any) -> torch.Tensor:
            return self.fn(x, *a, **k)

    return Compiled(model)


def machine_info() -> dict[str, Any]:
    """CPU model, logical CPUs, torch version and threads (for the report header)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "cpus_available": usable, "torch": torch.__version__,
            "threads": torch.get_num_threads(), "malloc": _MALLOC, "load_avg_1min": load}


def _check_names(models: list[str] | tuple[str, ...]) -> None:
    """Fail before the (slow) peak measurement on a name that is neither a model nor a file."""
    from .registry import list_models
    from .zoo import ALIASES, ZOO, is_file, resolve

    known = list_models()
    for name in models:
        if is_file(name):
            if not Path(name).exists():
                raise ValueError(f"{name}: no such weights file")
            continue
        base = name.removesuffix("+shrink")
        if base not in ALIASES and base not in ZOO and base not in known:
            raise ValueError(f"unknown model {name!r}; known: {', '.join(sorted({*ALIASES, *ZOO, *known}))}")
        if base in ZOO:
            resolve(base, None, task="upscale")  # a restorer is refused here (TaskMismatch)


def run_bench(models: list[str] | tuple[str, ...] = DEFAULT_MODELS, scale: float = 3,
              size: tuple[int, int] = (640, 360), repeat: int = 5, warmup: int = 2,
              backend: str = "torch", precision: str = "fp32", memory_format: str = "channels_last",
              compile: bool = False, tta: bool = False, threads: int | None = None,
              peak_size: str = "full", on_peak: Callable[[dict[str, Any]], None] | None = None,
              on_result: Callable[[BenchResult], None] | None = None) -> dict[str, Any]:
    """Measure the peak, then bench each model. Returns a JSON-able report.

    ``on_peak(report_so_far)`` and ``on_result(result)`` let a caller print as it goes.
    """
    _check_names(models)
    if threads:
        torch.set_num_threads(int(threads))
    info = machine_info()
    peak = measure_peak("bf16" if precision == "bf16" else "fp32", peak_size)
    settings = {"scale": scale, "input_wh": list(size), "repeat": repeat, "warmup": warmup,
                "backend": backend, "precision": precision, "memory_format": memory_format,
                "compile": compile, "tta": tta, "frame": "uint8 RGB in, uint8 out"}
    if on_peak:
        on_peak({"machine": info, "peak": peak, "settings": settings})
    results = []
    for name in models:
        r = bench_model(name, scale, size, repeat, warmup, backend, precision, memory_format,
                        compile, tta, peak_gflops=peak["peak_gflops"])
        results.append(r)
        if on_result:
            on_result(r)
    info["load_avg_1min_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"machine": info, "peak": peak, "settings": settings, "results": [asdict(r) for r in results]}


def format_row_header() -> str:
    return (f"{'model':<10} {'scale':>5} {'backend':<11} {'prec':<4} {'output':>10} {'ms':>9} "
            f"{'spread (min-max)':>19} {'MP/s':>7} {'GMAC':>8} {'GFLOP/s':>8} {'% peak':>6} {'RSS MB':>7}")


def format_row(r: BenchResult | dict[str, Any]) -> str:
    d = asdict(r) if isinstance(r, BenchResult) else r
    frac = "-" if d["peak_fraction"] is None else f"{100 * d['peak_fraction']:.0f}%"
    gfl = "-" if not d["macs"] else f"{d['gflops']:.1f}"
    out = f"{d['output_wh'][0]}x{d['output_wh'][1]}"
    spread = f"{d['min_ms']:.0f}-{d['max_ms']:.0f}"
    return (f"{d['model']:<10} {'x%g' % d['scale']:>5} {d['backend']:<11} {d['precision']:<4} {out:>10} "
            f"{d['median_ms']:9.1f} {spread:>19} {d['mp_per_s']:7.2f} {d['macs'] / 1e9:8.1f} {gfl:>8} "
            f"{frac:>6} {d['peak_rss_mb']:7.0f}")


def format_header(report: dict[str, Any]) -> str:
    """Machine, peak and settings lines of a report (results not needed)."""
    m, p, s = report["machine"], report["peak"], report["settings"]
    load = "" if m["load_avg_1min"] is None else f", load avg {m['load_avg_1min']:.2f}"
    return "\n".join([
        f"cpu: {m['cpu']} ({m['cpus_available']} of {m['logical_cpus']} logical CPUs usable), "
        f"torch {m['torch']}, {m['threads']} threads, malloc {m.get('malloc', 'default')}{load}",
        f"peak ({p['precision']}): matmul {p['matmul_gflops']:.1f} GFLOP/s, 3x3 conv "
        f"{p['conv3x3_gflops']:.1f} GFLOP/s -> peak {p['peak_gflops']:.1f} GFLOP/s",
        f"frame: {s['input_wh'][0]}x{s['input_wh'][1]} RGB uint8, median of {s['repeat']} after "
        f"{s['warmup']} warm-up, memory format {s['memory_format']}"
        + (", torch.compile" if s["compile"] else "") + (", TTA x8" if s["tta"] else "")])


def format_footer(report: dict[str, Any]) -> str:
    """Where the weights came from, and what GFLOP/s means."""
    weights = sorted({(r["model"], r["weights"]) for r in report["results"]})
    return "\n".join(["weights: " + ", ".join(f"{n} {w}" for n, w in weights),
                      "GFLOP/s = 2 x network multiply-adds / median time of the whole call "
                      "(colour, chroma, quantisation included)"])


def format_markdown(reports: list[dict[str, Any]], labels: list[str] | None = None) -> str:
    """One Markdown table over several reports (e.g. one per scale): model, scale,
    sizes, ms, MP/s, GFLOP/s, % of peak, peak RSS. ``labels`` (one per report)
    adds a first column naming each report's variant."""
    head = (["variant"] if labels else []) + ["model", "scale", "input -> output", "ms (min-max)", "MP/s",
                                             "GFLOP/s", "% of peak", "peak RSS MB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, rep in enumerate(reports):
        for d in rep["results"]:
            frac = "-" if d["peak_fraction"] is None else f"{100 * d['peak_fraction']:.0f}%"
            cells = ([labels[i]] if labels else []) + [
                d["model"], f"x{d['scale']:g}",
                f"{d['input_wh'][0]}x{d['input_wh'][1]} -> {d['output_wh'][0]}x{d['output_wh'][1]}",
                f"{d['median_ms']:.0f} ({d['min_ms']:.0f}-{d['max_ms']:.0f})", f"{d['mp_per_s']:.2f}",
                "-" if not d["macs"] else f"{d['gflops']:.1f}", frac, f"{d['peak_rss_mb']:.0f}"]
            lines.append("| " + " | ".join(cells) + " |")
    peaks = sorted({(rep["peak"]["precision"], round(rep["peak"]["matmul_gflops"], 1),
                     round(rep["peak"]["conv3x3_gflops"], 1)) for rep in reports})
    lines.append("")
    lines.append("Peak per run (precision, matmul, 3x3 conv GFLOP/s): "
                 + "; ".join(f"{p} {m} / {c}" for p, m, c in peaks))
    return "\n".join(lines)


def format_report(report: dict[str, Any]) -> str:
    """A plain-text table of a :func:`run_bench` report."""
    rows = [format_row(r) for r in report["results"]]
    return "\n".join([format_header(report), "", format_row_header(), *rows, "", format_footer(report)])

"""Inference backends: ONNX export, an onnxruntime runner, and bf16 autocast.

A backend is a *model wrapper*: an ``nn.Module`` that declares the same
:class:`~kakudai.models.spec.ModelSpec` (``spec``) as the network it wraps and whose
forward takes and returns float32 tensors. :func:`~kakudai.infer.upscale.super_resolve`,
tiling, TTA, the Y-only colour pipeline and :class:`~kakudai.api.Upscaler`
therefore run it unchanged; :func:`with_backend` is the one hook.

ONNX contract (what ``kakudai export`` writes): the graph is the **network
only**, at one fixed scale, with dynamic batch, height and width.

* input ``x``: float32 (N, C, h, w) in [0, 1]; C is the model's ``channels``.
  A Y-only model (C = 1) takes BT.601 luma in [16/255, 235/255]
  (:func:`kakudai.ops.color.rgb_to_ycbcr`, channel 0). A pre-upsampled model
  (SRCNN, RED-Net) takes the image already enlarged by MATLAB bicubic
  (:func:`kakudai.imresize`), so h, w are the output size.
* output ``y``: float32 (N, C, h * s, w * s) (pre-upsampled: (N, C, h, w)),
  not clipped.
* around it, kakudai's pipeline does: RGB -> YCbCr, network on Y, chroma by
  MATLAB bicubic, YCbCr -> RGB, clip to [0, 1] (Y-only models); gray images
  run through ``(g * 219 + 16) / 255`` and back. The model's metadata
  (``metadata_props``: arch, args, the export scale and the model's spec) lets
  :class:`OnnxModel` rebuild exactly that pipeline from the file alone.

onnx, onnxscript and onnxruntime are optional (``pip install 'kakudai[onnx]'``)
and imported inside the functions that need them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..models.calling import call_network, single_scale
from ..models.registry import arch_args_of, arch_of, weights_meta_of
from ..models.spec import ANY, ModelSpec

__all__ = ["ExportError", "export_onnx", "OnnxModel", "Bf16Autocast", "with_backend",
           "BACKENDS", "PRECISIONS", "ONNX_FORMAT"]

BACKENDS = ("torch", "onnxruntime")
PRECISIONS = ("fp32", "bf16")
ONNX_FORMAT = "kakudai.onnx.v1"


class ExportError(ValueError):
    """The model cannot be exported or run by the requested backend."""


def exported_spec(spec: ModelSpec, scale: int) -> ModelSpec:
    """The spec of ``spec``'s network exported at integer ``scale``: one fixed scale,
    unless the network is pre-upsampled (its input is already enlarged: any scale)."""
    if spec.pre_upsampled:
        return spec
    return ModelSpec(**{**spec.to_dict(), "scale": scale, "scales": (scale,)})


def _spec_from_attrs(attrs: dict[str, Any], scale: int, reference: nn.Module | None) -> ModelSpec:
    """The spec of a file exported before exports stored one (its attribute list)."""
    pre = bool(attrs.get("pre_upsampled", False))
    floats = reference.spec.feature_floats_per_pixel if reference is not None else 15.0
    return ModelSpec(scale=attrs.get("scale", scale) if pre else scale, scales=ANY if pre else (scale,),
                     pre_upsampled=pre, takes_scale=bool(attrs.get("takes_scale", False)) and not pre,
                     channels=int(attrs.get("channels", 3)), receptive_radius=int(attrs.get("receptive_radius", 0)),
                     pad_multiple=int(attrs.get("pad_multiple", 1)), feature_floats_per_pixel=floats)


def _has_network(model: nn.Module) -> bool:
    return any(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)) for m in model.modules())


class _AtScale(nn.Module):
    """``model`` with its scale fixed, so the exported graph has one input."""

    def __init__(self, model: nn.Module, scale: int):
        super().__init__()
        self.model, self.s = model, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return call_network(self.model, x, self.s)


def _check_scale(model: nn.Module, scale: float) -> int:
    if not float(scale).is_integer():
        raise ExportError(f"only integer scales can be exported, not x{scale:g}")
    s = int(scale)
    spec = model.spec
    if not spec.supports(s):
        raise ExportError(f"the model has scales {spec.scales}, not x{s}" if spec.multi_scale
                          else f"the model is for x{spec.scale:g}, not x{s}")
    return s


def export_onnx(model: nn.Module, path: str | os.PathLike, scale: float, opset: int = 18) -> Path:
    """Write the network of ``model`` at ``scale`` to ``path`` (see the module contract).

    Height, width and batch are dynamic. Uses torch's ``torch.export``-based ONNX
    exporter (needs onnx + onnxscript). Raises :class:`ExportError` for models
    with no network (bicubic) or that the exporter cannot capture.
    """
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise ExportError(f"ONNX export needs the onnx extra: pip install 'kakudai[onnx]' ({e.name} "
                          "is missing)") from None
    if not _has_network(model):
        raise ExportError("this model has no network to export (bicubic is plain resizing)")
    s = _check_scale(model, scale)
    model = single_scale(model, s).eval()  # ship only the tail that runs
    net = _AtScale(model, s).eval()
    example = torch.rand(1, model.spec.in_channels, 32, 40)
    dyn = torch.export.Dim.DYNAMIC
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)  # the exporter logs skipped torchvision ops etc.
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            prog = torch.onnx.export(net, (example,), dynamo=True, opset_version=opset,
                                     input_names=["x"], output_names=["y"],
                                     dynamic_shapes={"x": {0: dyn, 2: dyn, 3: dyn}},
                                     optimize=True, verbose=False)
        proto = prog.model_proto
        meta = {"format": ONNX_FORMAT, "arch": str(arch_of(model) or type(model).__name__),
                "args": json.dumps(arch_args_of(model)), "export_scale": str(s),
                "spec": json.dumps(exported_spec(model.spec, s).to_dict())}
        wmeta = weights_meta_of(model)
        if wmeta and wmeta.get("extra"):
            meta["weights_extra"] = json.dumps(wmeta["extra"])
        del proto.metadata_props[:]
        for k, v in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = k, v
        import onnx
        onnx.save_model(proto, str(tmp))
        os.replace(tmp, path)
    except ExportError:
        raise
    except Exception as e:  # the exporter wraps the real error; report its root in one line
        root = e
        while root.__cause__ is not None:
            root = root.__cause__
        first = re.sub(r"\x1b\[[0-9;]*m", "", str(root).splitlines()[0] if str(root) else "")
        raise ExportError(f"torch.onnx.export failed for {arch_of(model) or model!r}: "
                          f"{type(root).__name__}: {first}") from e
    finally:
        logger.setLevel(level)
        if tmp.exists():
            tmp.unlink()
    return path


class OnnxModel(nn.Module):
    """An exported network run by onnxruntime, usable wherever a kakudai model is.

    ``path``: a file written by :func:`export_onnx` (its metadata gives the
    scale and the spec). ``threads``: onnxruntime intra-op
    threads (default: ``torch.get_num_threads()``, i.e. the cores). ``reference``:
    the torch model it was exported from, kept as a submodule so that memory
    estimates (``tile="auto"``) and multiply-add counts still see its layers.
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None,
                 reference: nn.Module | None = None):
        super().__init__()
        try:
            import onnxruntime as ort
        except ImportError:
            raise ExportError("the onnxruntime backend needs: pip install 'kakudai[onnx]'") from None
        self.path = Path(path)
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads or torch.get_num_threads())
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # No busy-waiting between runs: the torch half of the pipeline (colour,
        # chroma, tiling) needs the same cores right after each network call.
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(self.path), so, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise ExportError(f"{self.path}: onnxruntime cannot load it ({str(e).splitlines()[0]})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("format") != ONNX_FORMAT:
            raise ExportError(f"{self.path}: not a kakudai ONNX export (no {ONNX_FORMAT} metadata)")
        self.arch = meta.get("arch", "?")
        self.arch_args = json.loads(meta.get("args", "{}"))
        self.export_scale = int(meta["export_scale"])
        if "spec" in meta:
            self.spec = ModelSpec.from_dict(json.loads(meta["spec"]))
        else:
            self.spec = _spec_from_attrs(json.loads(meta.get("attrs", "{}")), self.export_scale, reference)
        self.reference = reference

    def forward(self, x: torch.Tensor, scale: float | None = None) -> torch.Tensor:
        """(N, C, h, w) float -> (N, C, h*s, w*s) float32 (pre-upsampled: same size)."""
        if scale is not None and not self.spec.pre_upsampled and float(scale) != self.export_scale:
            raise ValueError(f"{self.path.name} was exported for x{self.export_scale}, not x{scale:g}")
        a = x.detach().to("cpu", torch.float32).contiguous().numpy()
        (y,) = self.session.run(["y"], {"x": a})
        return torch.from_numpy(y).to(x.device)


class Bf16Autocast(nn.Module):
    """``model`` run under CPU bf16 autocast (convolutions in bfloat16), float32 out.

    Operations outside autocast's lists keep float32, so skips that add the
    input back (KSR's anchor, RED-Net's residual) are summed in float32.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.spec = model.spec
        self.arch = arch_of(model)
        self.arch_args = arch_args_of(model)

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = self.model(x, *args, **kwargs)
        return y.float()


def _onnx_cache_path(model: nn.Module, scale: int) -> Path:
    """A file name that changes whenever the architecture, scale, weights or torch do."""
    from ..data.datasets import cache_dir

    h = hashlib.sha256()
    h.update(json.dumps([arch_of(model) or type(model).__name__, arch_args_of(model),
                         scale, torch.__version__], sort_keys=True, default=str).encode())
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().float().contiguous().cpu().numpy().tobytes())
    return cache_dir() / "onnx" / f"{arch_of(model) or 'model'}_x{scale}_{h.hexdigest()[:16]}.onnx"


def with_backend(model: nn.Module, scale: float, backend: str = "torch", precision: str = "fp32",
                 threads: int | None = None) -> nn.Module:
    """``model`` prepared to run on ``backend`` at ``precision`` (the upscale/bench hook).

    * ``torch``/``fp32``: the model itself.
    * ``torch``/``bf16``: wrapped in :class:`Bf16Autocast`.
    * ``onnxruntime``/``fp32``: exported once (cached under the kakudai cache,
      keyed by weights) and wrapped in :class:`OnnxModel`. A model with no
      network (bicubic) stays on torch: there is nothing to hand over.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    if isinstance(model, (OnnxModel, Bf16Autocast)):
        return model
    if backend == "torch":
        return Bf16Autocast(model) if precision == "bf16" else model
    if precision != "fp32":
        raise ExportError("the onnxruntime backend runs fp32 only")
    if not _has_network(model):
        return model
    if isinstance(scale, (tuple, list)):
        raise ExportError("per-axis scales (a target size) run on the torch backend only")
    s = _check_scale(model, scale)
    path = _onnx_cache_path(model, s)
    if not path.exists():
        export_onnx(model, path, s)
    return OnnxModel(path, threads=threads, reference=model)

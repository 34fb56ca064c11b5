"""Model cards: one JSON schema for every shipped weights file, and the Markdown made from it.

Each shipped file ``kakudai/weights/FILE.safetensors`` has its card ``FILE.json``
(the record: for tools, tests and the docs) and ``FILE.md`` (for people), which
:func:`render_markdown` makes from the JSON and nobody edits. Cards are written
by the ship command (:mod:`kakudai.ship`); ``tests/test_shipped.py`` re-measures
each card's ``check`` row with :func:`measure`.

The schema (``format: kakudai.card.v1``), one for every task:

``name``, ``task``, ``file``, ``scale``
    The shipped name and task (:mod:`kakudai.zoo`), the weights file, and the
    file's scale (None: an arbitrary-scale upscaler, or a same-size restorer).
``arch``, ``args``, ``params``
    The architecture, its arguments (as in the file's metadata) and parameter count.
``summary``
    What the model is and how it was made, for a reader who knows nothing else.
``lineage``
    The committed configs that made the file, in training order; each one after the
    first starts from the previous one's result (its ``init_from``), so ``kakudai
    train`` on them in turn reproduces the file.
``protocol``, ``command``
    How the results were measured, and the command that measures them.
``results``
    Rows ``{model, set, psnr, source}`` plus ``scale`` (upscalers) or ``level``
    (restorers: the noise sigma in 0-255 units or the JPEG quality), and as measured:
    ``ssim``, ``n``, ``input_psnr`` (the degraded input itself), ``clip`` (noisy
    input clipped and rounded to 8 bits), ``clean`` (a clean image restored at that
    level, PSNR against itself), ``label``. ``source`` is ``measured`` (by the ship
    command, re-measurable with :func:`measure`) or ``published`` (a paper's figure).
``check``
    The index of the result row that the test suite re-measures.
``speed``
    Rows ``{model, seconds, what}`` (and ``scale``): timed whole calls.
``criteria``
    Optional rows ``{criterion, value, unit, pass}``: targets the model was held to.
``training``
    ``iterations``, ``wall_hours``, ``cpu_hours`` over all runs of the lineage,
    ``runs`` (each run's log facts), ``config`` (the last run's resolved config).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FORMAT", "REQUIRED", "validate", "card_path", "read_card", "all_cards", "write_card",
           "render_markdown", "measure", "level_value_of"]

FORMAT = "kakudai.card.v1"
# key -> accepted types (None allowed where listed)
REQUIRED: dict[str, tuple[type, ...]] = {
    "format": (str,), "name": (str,), "task": (str,), "file": (str,), "scale": (int, float, type(None)),
    "arch": (str,), "args": (dict,), "params": (int,), "summary": (str,), "lineage": (list,),
    "protocol": (str,), "command": (str,), "results": (list,), "check": (int,), "speed": (list,),
    "criteria": (list,), "training": (dict,),
}
ROW_KEYS = {"model", "set", "scale", "level", "psnr", "ssim", "n", "input_psnr", "clip", "clean", "label", "source"}


def validate(card: dict[str, Any]) -> dict[str, Any]:
    """``card`` itself if it follows the schema, else ValueError naming what is wrong."""
    from .zoo import TASKS

    name = card.get("name", "?")
    for key, types in REQUIRED.items():
        if key not in card:
            raise ValueError(f"card {name}: no {key!r}")
        if not isinstance(card[key], types) or isinstance(card[key], bool):
            raise ValueError(f"card {name}: {key!r} is {type(card[key]).__name__}")
    extra = set(card) - set(REQUIRED)
    if extra:
        raise ValueError(f"card {name}: keys outside the schema: {sorted(extra)}")
    if card["format"] != FORMAT:
        raise ValueError(f"card {name}: format {card['format']!r}, expected {FORMAT!r}")
    if card["task"] not in TASKS:
        raise ValueError(f"card {name}: task {card['task']!r} is not one of {TASKS}")
    for i, row in enumerate(card["results"]):
        if set(row) - ROW_KEYS or not {"model", "set", "psnr", "source"} <= set(row):
            raise ValueError(f"card {name}: result {i} has keys {sorted(row)}")
        if row["source"] not in ("measured", "published"):
            raise ValueError(f"card {name}: result {i} source {row['source']!r}")
        if ("scale" in row) == ("level" in row):
            raise ValueError(f"card {name}: result {i} needs exactly one of scale and level")
    if not 0 <= card["check"] < len(card["results"]):
        raise ValueError(f"card {name}: check {card['check']} is not a result row")
    check = card["results"][card["check"]]
    if check["source"] != "measured" or check["model"] != card["name"]:
        raise ValueError(f"card {name}: the check row must be a measured row of {card['name']}")
    for cfg in card["lineage"]:
        if not isinstance(cfg, str) or not cfg.endswith(".toml"):
            raise ValueError(f"card {name}: lineage entry {cfg!r} is not a config file")
    return card


def card_path(weights_file: str | os.PathLike) -> Path:
    """The card of a weights file: the same stem, ``.json``."""
    return Path(weights_file).with_suffix(".json")


def read_card(path: str | os.PathLike) -> dict[str, Any]:
    """A card from its JSON file, checked against the schema."""
    return validate(json.loads(Path(path).read_text()))


def all_cards(weights_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Every card in ``weights_dir`` (default: the package's weights), sorted by file."""
    from . import zoo

    folder = Path(weights_dir) if weights_dir is not None else zoo.WEIGHTS_DIR
    return [read_card(p) for p in sorted(folder.glob("*.json"))]


def write_card(card: dict[str, Any], weights_dir: str | os.PathLike) -> Path:
    """Write ``card`` as ``FILE.json`` and its rendering ``FILE.md`` into ``weights_dir``."""
    validate(card)
    out = Path(weights_dir) / Path(card["file"]).with_suffix(".json").name
    out.write_text(json.dumps(card, indent=2) + "\n")
    out.with_suffix(".md").write_text(render_markdown(card))
    return out


# ----------------------------------------------------------------------------- Markdown
def _f(x: float | None, digits: int) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _level_word(task: str) -> str:
    return "sigma" if task == "denoise-noise" else "quality"


def _results_md(card: dict[str, Any]) -> list[str]:
    rows = card["results"]
    task, own = card["task"], card["name"]
    lines: list[str] = []
    if task == "upscale":
        models = list(dict.fromkeys(r["model"] for r in rows))
        with_ssim = any("ssim" in r for r in rows if r["model"] == own)
        keys = list(dict.fromkeys((r["scale"], r["set"]) for r in rows))
        head = ["scale", "set"] + [f"{m} PSNR" for m in models] + ([f"{own} SSIM"] if with_ssim else [])
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for s, st in keys:
            got = {r["model"]: r for r in rows if r["scale"] == s and r["set"] == st}
            cells = [f"x{s:g}", st] + [_f(got[m]["psnr"], 3) if m in got else "-" for m in models]
            if with_ssim:
                cells.append(_f(got[own].get("ssim"), 4) if own in got else "-")
            lines.append("| " + " | ".join(cells) + " |")
        return lines
    word = _level_word(task)
    groups = list(dict.fromkeys((r["set"], bool(r.get("clip")), bool(r.get("clean"))) for r in rows))
    for st, clip, clean in groups:
        part = [r for r in rows if (r["set"], bool(r.get("clip")), bool(r.get("clean"))) == (st, clip, clean)]
        if clean:
            lines += [f"Clean {st} images restored at each level (PSNR of the result against the image):", ""]
            for r in part:
                label = r.get("label") or f"{word} {r['level']:g}"
                lines.append(f"- {label}: {_f(r['psnr'], 2)} dB")
            lines.append("")
            continue
        levels = list(dict.fromkeys(r["level"] for r in part))
        what = ", noisy input clipped and rounded to 8 bits" if clip else ""
        lines += [f"{st}{what}, PSNR (dB) by {word}:", "",
                  "| | " + " | ".join(f"{v:g}" for v in levels) + " |", "|---" * (len(levels) + 1) + "|"]
        own_rows = {r["level"]: r for r in part if r["model"] == own and r["source"] == "measured"}
        if any("input_psnr" in r for r in own_rows.values()):
            lines.append("| input | " + " | ".join(_f(own_rows.get(v, {}).get("input_psnr"), 2) for v in levels)
                         + " |")
        for m in dict.fromkeys(r["model"] for r in part):
            got = {r["level"]: r for r in part if r["model"] == m}
            tag = " (published)" if next(iter(got.values()))["source"] == "published" else ""
            lines.append(f"| {m}{tag} | " + " | ".join(_f(got[v]["psnr"], 2) if v in got else "-"
                                                       for v in levels) + " |")
        lines.append("")
    return lines


def render_markdown(card: dict[str, Any]) -> str:
    """The ``.md`` rendering of a card: what people read beside the weights."""
    validate(card)
    scale = "" if card["scale"] is None else f" x{card['scale']:g}"
    kind = {"upscale": "upscaler" + (" (any scale)" if card["scale"] is None else ""),
            "denoise-noise": "restorer: Gaussian noise", "denoise-jpeg": "restorer: JPEG artifacts"}[card["task"]]
    lines = [f"# {card['name']}{scale}", "",
             f"{kind}. Architecture `{card['arch']}` {json.dumps(card['args'])}, {card['params']:,} parameters; "
             f"weights `{card['file']}`.", ""]
    if card["summary"]:
        lines += [card["summary"], ""]
    lines += ["## Results", ""] + _results_md(card)
    if lines[-1] != "":
        lines.append("")
    lines += [f"Measured with `{card['command']}` ({card['protocol']}).", ""]
    if card["criteria"]:
        lines += ["## Criteria", ""]
        for c in card["criteria"]:
            unit = f" {c['unit']}" if c["unit"] != "x" else "x"
            sign = "+" if c["unit"] == "dB" and c["value"] >= 0 else ""
            lines.append(f"- {'PASS' if c['pass'] else 'FAIL'}: {c['criterion']} ({sign}{c['value']:g}{unit})")
        lines.append("")
    if card["speed"]:
        lines += ["## Speed", ""]
        for t in card["speed"]:
            at = f" x{t['scale']:g}" if "scale" in t else ""
            lines.append(f"- {t['model']}{at}: {t['seconds']:g} s ({t['what']})")
        lines.append("")
    tr = card["training"]
    lines += ["## Training", ""]
    if card["lineage"]:
        lines.append("Reproduce: " + ", then ".join(f"`kakudai train {c}`" for c in card["lineage"])
                     + (" (each run starts from the one before, its `init_from`)." if len(card["lineage"]) > 1
                        else "."))
        lines.append("")
    facts = []
    if "iterations" in tr:
        facts.append(f"{tr['iterations']:,} iterations in {len(tr.get('runs', [])) or 1} run(s)")
    if "wall_hours" in tr:
        facts.append(f"{tr['wall_hours']:g} h wall time")
    if tr.get("cpu_hours") is not None:
        facts.append(f"{tr['cpu_hours']:g} CPU-hours")
    if facts:
        lines += ["- " + ", ".join(facts)]
    cfg = tr.get("config") or {}
    data = cfg.get("data") or {}
    if data:
        lines.append(f"- data: {', '.join(data.get('train_dirs', []))}; patch {data.get('patch_size')}, "
                     f"batch {data.get('batch_size')}"
                     + (f", scales {data.get('scales')}" if card["task"] == "upscale" else ""))
    if cfg.get("optim"):
        lines.append(f"- optimiser: {json.dumps(cfg['optim'])}")
    runs = tr.get("runs") or []
    for r in runs:
        name = f"`{r['name']}`: " if r.get("name") else ""
        val = [v for v in r.get("validation", []) if isinstance(v.get("psnr"), (int, float))]
        last = f", last validation {val[-1]['psnr']:.3f} dB at iteration {val[-1]['it']:,}" if val else ""
        lines.append(f"- {name}{r.get('iterations', 0):,} iterations in {r.get('wall_hours', 0):g} h{last}")
    return "\n".join(lines).rstrip("\n") + "\n"


# ----------------------------------------------------------------------------- measuring
def level_value_of(task: str, level: float) -> float:
    """The level-map value of a card level (sigma or JPEG quality) for ``task``."""
    from .infer.restore import level_value

    if task == "denoise-noise":
        return level_value("noise", sigma=float(level))
    return level_value("jpeg", quality=float(level))


def _clean_psnr(model, folder: Path, level: float) -> float:
    """Mean PSNR (RGB/gray) of restore(clean image) against the image itself."""
    from .data.datasets import list_images
    from .data.io import read_image_uint8
    from .infer.restore import restore_array
    from .ops.metrics import psnr

    vals = []
    for p in list_images(folder):
        img = read_image_uint8(p)
        vals.append(psnr(restore_array(img, model, level), img, channel="rgb"))
    return float(np.mean(vals))


def measure(card: dict[str, Any], row: dict[str, Any], bench_dir: str | os.PathLike,
            model=None, weights_dir: str | os.PathLike | None = None) -> dict[str, float]:
    """Measure result ``row`` of ``card`` now: {"psnr", and "ssim", "n", "input_psnr" when the
    row has them}, with exactly what ``kakudai eval`` runs.

    The card's own rows run its weights file alone (``model``, or the file in
    ``weights_dir``, default the package's); other measured rows load their model by
    name (a reference such as ``ksr+shrink`` or ``bicubic``). Published rows cannot be
    measured here.
    """
    from . import zoo
    from .checkpoint import load_weights_file
    from .evaluation import evaluate_denoise, evaluate_folder, evaluate_jpeg

    if row["source"] != "measured":
        raise ValueError(f"{row['model']} on {row['set']}: a published figure, not measured here")
    folder = Path(bench_dir) / row["set"]
    if model is None:
        if row["model"] == card["name"]:
            model = load_weights_file(Path(weights_dir or zoo.WEIGHTS_DIR) / card["file"])
        else:
            model = zoo.load_model(row["model"], row.get("scale"))
    with_ssim = "ssim" in row
    if card["task"] == "upscale":
        r = evaluate_folder(model, folder, row["scale"], with_ssim=with_ssim)
        return {"psnr": r["psnr"], "n": r["n"], **({"ssim": r["ssim"]} if with_ssim else {})}
    if row.get("clean"):
        return {"psnr": _clean_psnr(model, folder, level_value_of(card["task"], row["level"]))}
    out: dict[str, float] = {}
    if card["task"] == "denoise-noise":
        r = evaluate_denoise(model, folder, row["level"], with_ssim=with_ssim, clip=bool(row.get("clip")))
        if "input_psnr" in row:
            out["input_psnr"] = evaluate_denoise(None, folder, row["level"], with_ssim=False,
                                                 clip=bool(row.get("clip")))["psnr"]
    else:
        r = evaluate_jpeg(model, folder, int(row["level"]), with_ssim=with_ssim)
        if "input_psnr" in row:
            out["input_psnr"] = evaluate_jpeg(None, folder, int(row["level"]), with_ssim=False)["psnr"]
    out.update(psnr=r["psnr"], **({"ssim": r["ssim"]} if with_ssim else {}))
    if math.isnan(out["psnr"]):
        raise ValueError(f"{card['name']} on {row['set']}: PSNR is NaN")
    return out

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
    The steps that made the file, in order, run from the repository root: committed
    configs (``configs/NAME.toml``, each a ``kakudai train`` run) and, between them,
    model surgery commands (``python scripts/deepen.py SRC OUT ...``: a model grown
    deeper, converted to RGB, or turned into its gray companion). The first config
    trains from scratch; each later one starts from the step before (its ``init_from``):
    a run's output is ``runs/NAME/final.safetensors`` (the EMA weights when EMA is on) or
    ``runs/NAME/last/model.safetensors`` (its raw weights), NAME being the config's
    ``name``, and a command's output is its OUT. The last config's run gives the file.
    :func:`lineage_problems` checks a card's chain without training.
``protocol``, ``command``
    How the results were measured, and the command that measures them.
``results``
    Rows ``{model, set, psnr, source}`` plus ``scale`` (upscalers) or ``level``
    (restorers: the noise sigma in 0-255 units or the JPEG quality), and as measured:
    ``ssim``, ``n``, ``input_psnr`` (the degraded input itself), ``clip`` (noisy
    input clipped and rounded to 8 bits), ``clean`` (a clean image restored at that
    level, PSNR against itself), ``label``; upscaler rows may add ``degrade`` (a chain
    such as ``jpeg:75`` applied to the LR, as ``kakudai eval --degrade``) and
    ``cleaned_by`` (the JPEG restorer run first at the chain's quality, as the automatic
    route does: :func:`kakudai.evaluation.after_cleaning`). ``source`` is ``measured`` (by the ship
    command, re-measurable with :func:`measure`) or ``published`` (a paper's figure).
``check``
    The index of the result row that the test suite re-measures.
``speed``
    Rows ``{model, seconds, what}`` (and ``scale``): timed whole calls.
``criteria``
    Optional rows ``{criterion, value, unit, pass}``: targets the model was held to.
``training``
    ``iterations``, ``wall_hours``, ``cpu_hours`` over all runs of the lineage,
    ``runs`` (each run's log facts, oldest first: the last configs of the lineage; a
    run that ended before its config's iteration count and time budget says how in
    ``stopped``), ``config`` (the last run's resolved config).
"""

from __future__ import annotations

import json
import math
import os
import shlex
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

__all__ = ["FORMAT", "REQUIRED", "validate", "card_path", "read_card", "all_cards", "write_card",
           "render_markdown", "measure", "level_value_of", "STEP_PREFIX", "is_config", "run_outputs",
           "step_paths", "lineage_problems"]

FORMAT = "kakudai.card.v1"
# key -> accepted types (None allowed where listed)
REQUIRED: dict[str, tuple[type, ...]] = {
    "format": (str,), "name": (str,), "task": (str,), "file": (str,), "scale": (int, float, type(None)),
    "arch": (str,), "args": (dict,), "params": (int,), "summary": (str,), "lineage": (list,),
    "protocol": (str,), "command": (str,), "results": (list,), "check": (int,), "speed": (list,),
    "criteria": (list,), "training": (dict,),
}
ROW_KEYS = {"model", "set", "scale", "level", "psnr", "ssim", "n", "input_psnr", "clip", "clean", "label", "source",
            "degrade", "cleaned_by"}


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
    for step in card["lineage"]:
        if not isinstance(step, str) or not (is_config(step) or step.startswith(STEP_PREFIX)):
            raise ValueError(f"card {name}: lineage entry {step!r} is neither a config file nor a "
                             f"'{STEP_PREFIX}...' command")
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


def _input(row: dict[str, Any]) -> str:
    """How an upscaler row's LR was made, in words."""
    if not row.get("degrade"):
        return "clean"
    return row["degrade"] + (f", cleaned by {row['cleaned_by']}" if row.get("cleaned_by") else "")


def _results_md(card: dict[str, Any]) -> list[str]:
    rows = card["results"]
    task, own = card["task"], card["name"]
    lines: list[str] = []
    if task == "upscale":
        models = list(dict.fromkeys(r["model"] for r in rows))
        with_ssim = any("ssim" in r for r in rows if r["model"] == own)
        inputs = any("degrade" in r for r in rows)
        keys = list(dict.fromkeys((r["scale"], r["set"], _input(r)) for r in rows))
        head = (["scale", "set"] + (["input"] if inputs else []) + [f"{m} PSNR" for m in models]
                + ([f"{own} SSIM"] if with_ssim else []))
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for s, st, inp in keys:
            got = {r["model"]: r for r in rows if (r["scale"], r["set"], _input(r)) == (s, st, inp)}
            cells = ([f"x{s:g}", st] + ([inp] if inputs else [])
                     + [_f(got[m]["psnr"], 3) if m in got else "-" for m in models])
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
    if len(card["lineage"]) == 1:
        lines += [f"Reproduce: `kakudai train {card['lineage'][0]}`.", ""]
    elif card["lineage"]:
        lines += ["Reproduce, from the repository root (each step starts from the output of the one "
                  "before: a config's `init_from`):", ""]
        lines += [f"{i}. `{'kakudai train ' + step if is_config(step) else step}`"
                  for i, step in enumerate(card["lineage"], 1)]
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
        stopped = f"; stopped {r['stopped']}" if r.get("stopped") else ""
        lines.append(f"- {name}{r.get('iterations', 0):,} iterations in {r.get('wall_hours', 0):g} h{last}{stopped}")
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
    from .evaluation import after_cleaning, evaluate_denoise, evaluate_folder, evaluate_jpeg

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
        cleaner = None
        if row.get("cleaned_by"):
            from .infer.restore import load_restorer
            cleaner = load_restorer("jpeg", row["cleaned_by"])
        r = evaluate_folder(after_cleaning(model, cleaner, row.get("degrade"), row["scale"]), folder,
                            row["scale"], with_ssim=with_ssim, degrade=row.get("degrade"))
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


# ----------------------------------------------------------------------------- lineage
STEP_PREFIX = "python scripts/"  # a lineage entry that is a command (model surgery) starts so
# A run's outputs (kakudai.train.trainer): the weights at its end, EMA when EMA is on, and
# the raw weights of its resume point.
RUN_OUTPUTS = ("final.safetensors", "last/model.safetensors")
# ... and, of a run that trains its JPEG restorer too (optim.cleaner_lr_mult), the restorer.
CLEANER_OUTPUTS = ("final_cleaner.safetensors", "last/cleaner.safetensors")
# Resolved-config keys that say where or how fast a run went, not what it computed
# (init_from is checked as the chain's link instead).
MACHINE_KEYS = frozenset({"name", "out_dir", "threads", "progress", "init_from"})


def is_config(step: str) -> bool:
    """Whether a lineage entry is a config file (else a command)."""
    return step.endswith(".toml")


def run_outputs(cfg) -> set[str]:
    """The files a run of TrainConfig ``cfg`` leaves, as paths relative to where it ran."""
    run = PurePosixPath(cfg.out_dir) / (cfg.name or "run")
    outs = RUN_OUTPUTS + (CLEANER_OUTPUTS if cfg.trains_cleaner else ())
    return {str(run / out) for out in outs}


def step_paths(command: str) -> tuple[str, str]:
    """(input, output) weights of a surgery command: its script's first two arguments."""
    words = shlex.split(command)
    if len(words) < 4 or words[0] != "python":
        raise ValueError(f"{command!r}: expected python scripts/SCRIPT.py SRC OUT ...")
    return words[2], words[3]


def step_arch_changes(command: str) -> dict[str, Any]:
    """The architecture arguments a surgery command changes (scripts/deepen.py's
    ``--blocks N``, ``--rgb`` and ``--gray``), for a network no later config rebuilds."""
    words = shlex.split(command)
    changes: dict[str, Any] = {}
    for i, w in enumerate(words):
        if w == "--blocks" and i + 1 < len(words):
            changes["blocks"] = int(words[i + 1])
        elif w in ("--rgb", "--gray"):
            changes["channels"] = 3 if w == "--rgb" else 1
    return changes


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config sections as dotted keys; a model's ``args`` and other maps stay whole."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and k in ("data", "optim", "model", "degrade"):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def lineage_problems(card: dict[str, Any], root: str | os.PathLike) -> list[str]:
    """What keeps ``card``'s lineage from reproducing its file, without training (empty: none).

    ``root``: the repository, where the configs and scripts live and the steps run. The
    chain: every config exists and loads; the first trains from scratch; each later
    config's ``init_from`` and each command's input is an output of the step before.
    The last config builds the card's architecture and arguments (and trains the card's
    scale). A restorer trained together with an upscaler has those joint runs in its
    chain: there the link is the config's ``data.cleaned_by`` (the upscaler's own chain is
    its ``init_from``, on the upscaler's card), and the architecture is that of the last
    config that is not such a run, as surgery commands after it changed it (a restorer
    grown between joint runs).
    Against the card's training record: the last config holds the values the last run
    resolved (machine-only keys aside), the runs are the lineage's last configs, each
    within its config's iterations and time budget, and one that stopped short of both
    says so (``stopped``).
    """
    from .registry import create_model
    from .train.config import config_to_dict, load_config

    root = Path(root)
    lineage = card["lineage"]
    problems: list[str] = []
    if not lineage or not is_config(lineage[0]) or not is_config(lineage[-1]):
        return [f"the lineage must start and end with a config: {lineage}"]
    configs = []
    outputs: set[str] = set()
    restorer = str(card.get("task", "")).startswith("denoise")
    built_by = None  # the config that builds the card's network
    surgery: dict[str, Any] = {}  # what commands after it changed in that network
    for i, step in enumerate(lineage):
        if is_config(step):
            try:
                cfg = load_config(root / step)
            except (OSError, ValueError, KeyError, TypeError) as e:
                problems.append(f"{step}: {type(e).__name__}: {e}")
                return problems
            # A run that trains this restorer together with an upscaler.
            joint = restorer and cfg.trains_cleaner
            if not joint:
                built_by, surgery = cfg, {}
            link, key = (cfg.data.cleaned_by, "data.cleaned_by") if joint else (cfg.init_from, "init_from")
            if i == 0 and cfg.init_from:
                problems.append(f"{step}: the first step trains from scratch, but init_from = {cfg.init_from!r}")
            elif i > 0 and link not in outputs:
                problems.append(f"{step}: {key} = {link!r}, not an output of {lineage[i - 1]} "
                                f"({', '.join(sorted(outputs))})")
            configs.append(cfg)
            outputs = run_outputs(cfg)
        else:
            try:
                src, out = step_paths(step)
            except ValueError as e:
                problems.append(str(e))
                return problems
            script = shlex.split(step)[1]
            if not (root / script).is_file():
                problems.append(f"{step}: no script {script}")
            if i == 0 or src not in outputs:
                problems.append(f"{step}: its input {src} is not an output of the step before "
                                f"({', '.join(sorted(outputs)) or 'none'})")
            outputs = {out}
            surgery.update(step_arch_changes(step))
    last = configs[-1]
    built_by = built_by or last
    args = {**built_by.model.args, **surgery}
    if built_by.data.task == "sr" and not built_by.data.continuous_scale:
        args.setdefault("scale", built_by.data.scales[0] if len(built_by.data.scales) == 1
                        else list(built_by.data.scales))
    model = create_model(built_by.model.name, **args)
    built = {k: v for k, v in model.arch_args.items() if k != "scale"}
    if (model.arch, built) != (card["arch"], {k: v for k, v in card["args"].items() if k != "scale"}):
        problems.append(f"{lineage[-1]} builds {model.arch} {built}, the file is {card['arch']} {card['args']}")
    if card["scale"] is not None and card["scale"] not in built_by.data.scales:
        problems.append(f"{lineage[-1]} trains scales {last.data.scales}, the file is x{card['scale']:g}")
    tr = card["training"]
    ran = _flat(tr.get("config") or {})
    own = _flat(config_to_dict(last))
    for key, value in sorted(ran.items()):
        if key not in MACHINE_KEYS and own.get(key, "<missing>") != value:
            problems.append(f"{lineage[-1]}: {key} = {own.get(key, '<missing>')!r}, the run had {value!r}")
    runs = tr.get("runs") or []
    if len(runs) > len(configs):
        problems.append(f"{len(runs)} runs on the card, {len(configs)} configs in the lineage")
        return problems
    for run, cfg in zip(runs, configs[len(configs) - len(runs):]):
        its, hours = run.get("iterations", 0), run.get("wall_hours")
        what = f"run {run.get('name') or cfg.name}"
        if its > cfg.iterations:
            problems.append(f"{what}: {its:,} iterations, its config {cfg.name} has {cfg.iterations:,}")
        # 5% and a minute of slack: a resumed run repeats the steps after its last checkpoint.
        if cfg.max_minutes and hours is not None and hours * 60 > cfg.max_minutes * 1.05 + 1:
            problems.append(f"{what}: {hours * 60:.0f} minutes, its config {cfg.name} allows {cfg.max_minutes:g}")
        ended = its >= cfg.iterations - cfg.log_every or (
            cfg.max_minutes and hours is not None and hours * 60 >= 0.9 * cfg.max_minutes)
        if not ended and not run.get("stopped"):
            problems.append(f"{what}: ended at {its:,} iterations, before its config {cfg.name}'s "
                            f"{cfg.iterations:,} iterations or {cfg.max_minutes:g} minutes, and says no 'stopped'")
    if runs and "iterations" in tr and tr["iterations"] != sum(r.get("iterations", 0) for r in runs):
        problems.append(f"training iterations {tr['iterations']:,} are not the runs' sum")
    return problems

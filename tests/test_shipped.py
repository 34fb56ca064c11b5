"""Shipped weights and their cards: every card follows the one schema, describes its
file, its check row is what `kakudai eval` measures now (within 0.01 dB), and its
lineage is a chain of committed configs and surgery steps that `kakudai train`
reproduces (checked without training)."""

import copy
import json
import re
from pathlib import Path

import pytest

from kakudai.cards import lineage_problems, measure, read_card, render_markdown
from kakudai.checkpoint import load_weights_file, read_metadata
from kakudai.summary import count_params
from kakudai.zoo import WEIGHTS_DIR, ZOO, load_model, resolve

REPO = Path(__file__).resolve().parents[1]
CARDS = sorted(WEIGHTS_DIR.glob("*.json"))
HISTORY = re.compile(r"session \d|issue \d|\brun \d", re.IGNORECASE)


@pytest.mark.parametrize("card_path", CARDS, ids=[p.stem for p in CARDS])
@pytest.mark.slow
def test_card_matches_eval(card_path: Path, bench_dir):
    card = read_card(card_path)
    row = card["results"][card["check"]]
    got = measure(card, row, bench_dir)
    assert abs(got["psnr"] - row["psnr"]) <= 0.01, (row, got)


@pytest.mark.parametrize("card_path", CARDS, ids=[p.stem for p in CARDS])
def test_card_describes_its_file(card_path: Path):
    card = read_card(card_path)  # the one schema
    weights = WEIGHTS_DIR / card["file"]
    assert weights.with_suffix(".json") == card_path and weights.exists()
    entry = ZOO[card["name"]]
    assert card["task"] == entry.task and card["arch"] == entry.arch and weights in entry.paths()
    assert card["scale"] == (int(weights.stem.rsplit("_x", 1)[1]) if entry.scales else None)
    meta = read_metadata(weights)
    assert (meta["arch"], meta["args"]) == (card["arch"], card["args"])
    assert count_params(load_weights_file(weights)) == card["params"]
    assert card_path.with_suffix(".md").read_text() == render_markdown(card)  # rendered, never hand-edited
    assert card["lineage"] and all((REPO / s).is_file() for s in card["lineage"] if s.endswith(".toml")), \
        card["lineage"]
    # A card and its weights speak to a reader who never saw the project's history.
    for text in (card_path.read_text(), card_path.with_suffix(".md").read_text(), json.dumps(meta)):
        assert not HISTORY.search(text), HISTORY.search(text)


def test_every_shipped_file_has_a_card():
    for e in ZOO.values():
        for p in e.paths():
            assert not p.exists() or p.with_suffix(".json").exists(), p.name


def test_default_uses_shipped_flagship_when_present():
    for s in (2, 3, 4):
        shipped = (WEIGHTS_DIR / f"ksr_x{s}.safetensors").exists()
        assert resolve("default", s).name == ("ksr" if shipped else resolve("default", s).name)
        if shipped:
            m = load_model("default", s)
            assert m.arch == "ksr" and m.scale == s


@pytest.mark.parametrize("card_path", CARDS, ids=[p.stem for p in CARDS])
def test_lineage_reproduces_the_file(card_path: Path):
    """The card's steps, run in order from the repository root, make its file: every
    config loads, each starts from the step before, the last one builds the file's
    architecture with the values its run had, and the runs fit their configs."""
    card = read_card(card_path)
    meta = read_metadata(WEIGHTS_DIR / card["file"])
    assert lineage_problems({**card, "arch": meta["arch"], "args": meta["args"]}, REPO) == []


def _card(stem: str) -> dict:
    path = WEIGHTS_DIR / f"{stem}.json"
    if not path.exists():
        pytest.skip(f"{path.name} is not shipped")
    return copy.deepcopy(read_card(path))


def test_lineage_check_finds_a_config_that_needs_overrides():
    # The flagship's last run as if its recipe were the first stage plus --set overrides.
    card = _card("ksr_x3")
    card["lineage"] = ["configs/ksr.toml"]
    problems = "\n".join(lineage_problems(card, REPO))
    assert "optim.lr = 0.0005, the run had 0.0002" in problems and "max_minutes" in problems
    assert "4 runs on the card, 1 configs" in problems


def test_lineage_check_finds_a_broken_link():
    card = _card("unet-noise")
    without_growth = [s for s in card["lineage"] if s.endswith(".toml")]
    problems = lineage_problems({**card, "lineage": without_growth}, REPO)
    assert any("configs/unet_denoise_deep.toml: init_from" in p for p in problems), problems
    wrong_input = [s.replace("runs/unet-noise/final", "runs/elsewhere/final") for s in card["lineage"]]
    problems = lineage_problems({**card, "lineage": wrong_input}, REPO)
    assert any("its input runs/elsewhere/final.safetensors" in p for p in problems), problems
    assert lineage_problems({**card, "lineage": card["lineage"][1:]}, REPO)  # starts with a command


def test_lineage_of_a_restorer_trained_with_an_upscaler():
    """A restorer whose last step trained it together with an upscaler links through that
    config's data.cleaned_by (not its init_from, the upscaler's) and is built by the step
    before, as grown by a surgery command between joint runs; dropping the restorer's own
    step breaks the link, and dropping the growth leaves the wrong architecture."""
    card = _card("unet-jpeg-up")
    assert card["lineage"][-1] == "configs/ksr_jpeg_x2_deep.toml"
    assert lineage_problems(card, REPO) == []
    grow = next(i for i, s in enumerate(card["lineage"]) if "--blocks" in s)
    problems = lineage_problems({**card, "lineage": card["lineage"][:grow]}, REPO)
    assert any("builds unet" in p and "'blocks': 2" in p for p in problems), problems
    problems = lineage_problems({**card, "lineage": ["configs/ksr.toml", "configs/ksr_jpeg_x2_joint.toml"]}, REPO)
    assert any("data.cleaned_by = 'runs/unet-jpeg/final.safetensors', not an output" in p
               for p in problems), problems
    assert any("builds ksr" in p for p in problems), problems  # ksr.toml is no restorer


def test_lineage_check_finds_the_wrong_architecture_and_an_unmarked_early_stop():
    card = _card("unet-noise")
    problems = lineage_problems({**card, "args": {**card["args"], "blocks": 2}}, REPO)
    assert any("builds unet" in p for p in problems), problems
    for run in card["training"]["runs"]:
        run.pop("stopped", None)
    problems = lineage_problems(card, REPO)
    assert any("says no 'stopped'" in p for p in problems), problems
    card["training"]["runs"][0]["iterations"] = 10 ** 6
    assert any("iterations, its config" in p for p in lineage_problems(card, REPO))


def test_lineage_check_reads_configs_from_the_given_root(tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "a.toml").write_text('name = "a"\n[model]\nname = "ksr"\n')
    (tmp_path / "configs" / "b.toml").write_text('name = "b"\ninit_from = "runs/a/final.safetensors"\n'
                                                 '[model]\nname = "ksr"\nargs = { channels = 1 }\n')
    card = {"arch": "ksr", "args": {"channels": 1, "scale": 3}, "scale": 3, "training": {},
            "lineage": ["configs/a.toml", "configs/b.toml"]}
    assert lineage_problems(card, tmp_path) == []
    (tmp_path / "configs" / "b.toml").write_text('name = "b"\ninit_from = "checkpoints/x.safetensors"\n')
    assert any("not an output of configs/a.toml" in p for p in lineage_problems(card, tmp_path))
    assert any("configs/c.toml" in p for p in lineage_problems({**card, "lineage": ["configs/c.toml"]}, tmp_path))


@pytest.mark.parametrize("flags", [["--gray"], ["--blocks", "3"], ["--gray", "--blocks", "3"]])
def test_surgery_step_writes_the_same_function(tmp_path, flags):
    """`scripts/deepen.py SRC OUT ...`, a lineage step: the written model computes what the
    source does (on a gray image as R = G = B, for --gray)."""
    import subprocess
    import sys

    import torch

    from kakudai.checkpoint import save_model
    from kakudai.registry import create_model

    torch.manual_seed(0)
    src = create_model("unet", channels=3, widths=[8, 16], blocks=2, level_map=True).eval()
    with torch.no_grad():
        for p in src.parameters():
            p.add_(0.05 * torch.randn_like(p))  # no identity shortcuts left to hide a wrong copy
    save_model(src, tmp_path / "src.safetensors")
    out = tmp_path / "out.safetensors"
    subprocess.run([sys.executable, str(REPO / "scripts" / "deepen.py"), str(tmp_path / "src.safetensors"),
                    str(out), *flags], check=True, capture_output=True, cwd=REPO)
    got = load_weights_file(out).eval()
    assert got.arch_args["channels"] == (1 if "--gray" in flags else 3)
    assert got.arch_args["blocks"] == (3 if "--blocks" in flags else 2)
    g, level = torch.rand(1, 1, 32, 32), torch.full((1, 1, 32, 32), 0.1)
    with torch.no_grad():
        want = src(torch.cat([g.expand(-1, 3, -1, -1), level], 1))
        have = got(torch.cat([g if "--gray" in flags else g.expand(-1, 3, -1, -1), level], 1))
    want = want.mean(1, keepdim=True) if "--gray" in flags else want
    assert torch.allclose(have, want, atol=1e-5)

"""Shipped weights and their cards: every card follows the one schema, describes its
file, and its check row is what `kakudai eval` measures now (within 0.01 dB)."""

import json
import re
from pathlib import Path

import pytest

from kakudai.cards import measure, read_card, render_markdown
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
    assert card["lineage"] and all((REPO / cfg).is_file() for cfg in card["lineage"]), card["lineage"]
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

"""The illustration data step (kakudai.data.art) on SVGs written here, and the
pieces of the training path it relies on: a config naming the cache folder,
alpha composited on read, a missing training folder reported."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kakudai.data import art
from kakudai.data.datasets import TrainPairs, cache_dir
from kakudai.data.io import read_image_uint8
from kakudai.ops.screentone import screentone
from kakudai.train.config import load_config
from kakudai.train.trainer import resolve_data_path

REPO = Path(__file__).resolve().parents[1]
SIZE = 96
_PNG_1PX = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQ"
            "AAAABJRU5ErkJggg==")

SVGS = {
    # Nothing drawn: skipped as near-empty.
    "blank": '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="48"></svg>',
    # Transparent apart from a blue disc; sized in mm (resvg-py needs dpi for those),
    # twice as tall as wide.
    "transparent": '<svg xmlns="http://www.w3.org/2000/svg" width="20mm" height="40mm" '
                   'viewBox="0 0 20 40"><circle cx="10" cy="20" r="8" fill="#0000ff"/></svg>',
    # Opaque page with shapes and a stroke.
    "normal": '<svg xmlns="http://www.w3.org/2000/svg" width="120" height="90">'
              '<rect width="120" height="90" fill="#ffeecc"/>'
              '<rect x="10" y="10" width="50" height="40" fill="#c03020"/>'
              '<path d="M70 80 L110 15" stroke="#203080" stroke-width="6"/></svg>',
    "broken": '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect',
    "raster": '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
              'width="10" height="10"><image width="10" height="10" '
              f'xlink:href="data:image/png;base64,{_PNG_1PX}"/></svg>',
}


@pytest.fixture
def svg_files(tmp_path) -> list[Path]:
    folder = tmp_path / "svg"
    folder.mkdir()
    for name, text in SVGS.items():
        (folder / f"{name}.svg").write_text(text)
    return sorted(folder.iterdir())


def _render(svg_files, out, **kw):
    pytest.importorskip("resvg_py")
    return art.render_svgs(svg_files, out, size=SIZE, min_side=16, seed=3, **kw)


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.mode == "RGB"  # composited: no alpha left
        return np.asarray(im)


def test_renders_keeps_and_skips(svg_files, tmp_path):
    m = _render(svg_files, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["normal.png", "transparent.png"]
    assert m["rendered"] == 2 and m["skipped_count"] == 3 and m["processed"] == 5
    assert m["skipped"] == {"blank": "near_empty", "broken": "parse_error", "raster": "embedded_raster"}
    normal = _read(tmp_path / "out" / "normal.png")
    assert normal.shape == (72, SIZE, 3)  # 120 x 90 -> longer side SIZE
    assert tuple(normal[36, 30]) == (0xC0, 0x30, 0x20)
    disc = _read(tmp_path / "out" / "transparent.png")
    assert disc.shape[0] == SIZE and abs(disc.shape[1] - SIZE // 2) <= 1  # resvg rounds up
    assert tuple(disc[SIZE // 2, SIZE // 4]) == (0, 0, 255)  # the drawing's own colour
    corner = disc[0, 0].astype(int)  # transparent there: the light background shows
    assert corner.min() >= 150, corner


def test_manifest(svg_files, tmp_path):
    _render(svg_files, tmp_path / "out", source={"package": "p", "version": "1", "license": "PD"})
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert m["source"] == {"package": "p", "version": "1", "license": "PD"}
    assert m["settings"]["size"] == SIZE and m["settings"]["seed"] == 3
    assert m["rendered"] == 2 and m["skipped_count"] == 3
    assert m["skipped_by_reason"] == {"embedded_raster": 1, "near_empty": 1, "parse_error": 1}
    assert sum(m["backgrounds"].values()) == 2
    assert m["rasteriser"].startswith("resvg-py")
    with pytest.raises(ValueError, match="other|not"):  # another size never mixes into the folder
        art.render_svgs(svg_files, tmp_path / "out", size=SIZE * 2, min_side=16, seed=3)


def test_deterministic_and_resumable(svg_files, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    _render(svg_files, a)
    first = _render(svg_files, b, limit=2)  # a prefix of the same order ...
    assert first["processed"] == 2
    assert _render(svg_files, b)["processed"] == 3  # ... extended, not redone
    names = sorted(p.name for p in a.glob("*.png"))
    assert names == sorted(p.name for p in b.glob("*.png"))
    for n in names:
        assert (a / n).read_bytes() == (b / n).read_bytes()
    stamp = {n: (a / n).stat().st_mtime_ns for n in names}
    assert _render(svg_files, a)["processed"] == 0  # nothing rendered or re-parsed again
    assert stamp == {n: (a / n).stat().st_mtime_ns for n in names}
    kept = (a / "normal.png").read_bytes()
    (a / "normal.png").unlink()
    assert _render(svg_files, a)["processed"] == 1
    assert (a / "normal.png").read_bytes() == kept


def test_order_is_fixed_and_near_duplicates_thinned():
    names = [f"star_{i}pt{j}step" for i in range(5, 45) for j in range(1, 11)] + [f"d{i}" for i in range(100)]
    order = art.select(names, seed=0)
    assert order == art.select(list(reversed(names)), seed=0)  # by name, not by position
    assert order[:30] == art.select(names, seed=0, limit=30)
    held_out = art.select(names, seed=0, limit=20, skip=30)  # what a --limit 30 set never saw
    assert held_out == order[30:50] and not set(held_out) & set(order[:30])
    assert art.select(names, seed=1) != order
    assert {n for n in order if n.startswith("d")} == {f"d{i}" for i in range(100)}
    stars = len(order) - 100
    assert 5 <= stars <= 40, stars  # about 400 / 20


def test_backgrounds_are_light_and_mostly_white():
    kinds = {}
    for i in range(300):
        kind, bg = art.background(8, 12, np.random.default_rng(i))
        kinds[kind] = kinds.get(kind, 0) + 1
        assert bg.shape == (8, 12, 3) and bg.dtype == np.float32
        assert bg.min() >= 0.59 and bg.max() <= 1.0  # value >= 0.85, saturation <= 0.3
        if kind == "gradient":
            assert np.ptp(bg) > 0
        else:
            assert np.ptp(bg.reshape(-1, 3), axis=0).max() == 0
    assert set(kinds) == {"white", "flat", "gradient"}
    assert kinds["white"] > 0.6 * 300


def test_emptiness():
    white = np.ones((100, 100, 3), np.float32)
    assert art._emptiness(white) == "near_empty"
    few = white.copy()
    few[:2, :] = 0  # 2% ink
    assert art._emptiness(few) == "near_empty"
    enough = white.copy()
    enough[:5, :] = 0
    assert art._emptiness(enough) is None
    faint = white.copy()
    faint[:, ::2] = 1 - 9 / 255  # half the pixels, barely visible
    assert art._emptiness(faint) == "flat"


def test_missing_rasteriser_is_one_line(svg_files, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "resvg_py", None)  # import fails as if not installed
    with pytest.raises(art.MissingDependency, match="pip install"):
        art.render_svgs(svg_files, tmp_path / "out")
    monkeypatch.setattr(art, "openclipart_svgs", lambda: svg_files)
    assert art.main(["--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "resvg-py" in err and "Traceback" not in err


# ---- the training side: naming the cache folder, reading RGBA, missing folders

def test_config_names_the_cache_folder_portably(monkeypatch, tmp_path):
    cfg = load_config(REPO / "configs" / "art_ksr.toml")
    cached = [d for d in cfg.data.train_dirs if d.startswith("$KAKUDAI_CACHE/")]
    assert cached == ["$KAKUDAI_CACHE/art/openclipart-768"]
    assert resolve_data_path(cached[0]) == str(cache_dir() / "art" / "openclipart-768")
    monkeypatch.delenv("KAKUDAI_CACHE")  # the default location
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert resolve_data_path(cached[0]) == str(tmp_path / "kakudai" / "art" / "openclipart-768")


def test_training_reads_alpha_composited_on_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)  # black colour under full transparency
    rgba[:2, :, :] = (200, 10, 10, 255)
    rgba[2, :, 3] = 128
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    rgb = read_image_uint8(tmp_path / "a.png", mode="RGB")
    assert tuple(rgb[0, 0]) == (200, 10, 10)
    assert tuple(rgb[3, 0]) == (255, 255, 255)
    assert tuple(rgb[2, 0]) == (127, 127, 127)  # half black over white


def test_missing_training_folder_is_an_error(tmp_path):
    (tmp_path / "here").mkdir()
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(tmp_path / "here" / "x.png")
    with pytest.raises(FileNotFoundError, match="not found.*gone"):
        TrainPairs([tmp_path / "here", tmp_path / "gone"], [2], verbose=False)


def test_screentone_keeps_ink_and_paper_and_dots_the_middle():
    """Black stays black, white stays white, a mid-gray fill becomes dots whose ink share
    matches its level, the larger the longer the screen's period."""
    img = np.full((64, 96), 255, np.uint8)
    img[:, :32] = 0
    img[:, 32:64] = 128
    out = screentone(np.repeat(img[:, :, None], 3, axis=2), period=6.0)
    assert out.shape == (64, 96) and out.dtype == np.uint8
    assert (out[:, :32] == 0).all() and (out[:, 64:] == 255).all()
    mid = out[:, 32:64].astype(np.float64)
    assert abs(mid.mean() - 128) < 12 and mid.std() > 60  # dots, not a flat gray
    # A coarser screen has larger, fewer dots: fewer ink / paper changes along a row.
    def changes(period: float) -> float:
        t = screentone(img, period=period)[:, 32:64] > 127
        return float((t[:, 1:] != t[:, :-1]).mean())
    assert changes(10.0) < 0.7 * changes(4.0)


def test_train_pairs_add_screentone_copies(tmp_path):
    """data.screentone_share: the chosen images come twice, once as they are and once as
    gray screentone (the same choice for the same file names every time)."""
    rng = np.random.default_rng(0)
    for i in range(6):
        a = np.full((48, 48, 3), 255, np.uint8)
        a[8:40, 8:40] = rng.integers(60, 200, 3)
        Image.fromarray(a).save(tmp_path / f"d{i}.png")
    plain = TrainPairs([tmp_path], [2], verbose=False)
    toned = TrainPairs([tmp_path], [2], verbose=False, screentone=(1.0, 4.0, 6.0))
    assert len(plain.pairs[2]) == 6 and len(toned.pairs[2]) == 12
    grays = [hr for hr, _ in toned.pairs[2] if (hr == hr[:, :, :1]).all()]
    assert len(grays) == 6 and all(g[8:40, 8:40].std() > 30 for g in grays)  # dotted fills
    half = TrainPairs([tmp_path], [2], verbose=False, screentone=(0.5, 4.0, 6.0))
    again = TrainPairs([tmp_path], [2], verbose=False, screentone=(0.5, 4.0, 6.0))
    assert 6 < len(half.pairs[2]) < 12 and len(again.pairs[2]) == len(half.pairs[2])
    with pytest.raises(ValueError, match="screentone"):
        TrainPairs([tmp_path], [2], verbose=False, screentone=(0.5, 6.0))


def test_train_pairs_made_gray(tmp_path):
    """data.gray: every pair (screentone copies included) is gray, as RGB with equal
    channels, and the LR is the benchmark shrink of that gray HR."""
    rng = np.random.default_rng(1)
    for i in range(4):
        a = np.full((48, 48, 3), 255, np.uint8)
        a[8:40, 8:40] = rng.integers(60, 200, 3)
        Image.fromarray(a).save(tmp_path / f"d{i}.png")
    gray = TrainPairs([tmp_path], [2], verbose=False, screentone=(1.0, 4.0, 6.0), gray=True)
    assert len(gray.pairs[2]) == 8
    for hr, lr in gray.pairs[2]:
        assert (hr == hr[:, :, :1]).all() and (lr == lr[:, :, :1]).all()
    first = np.asarray(Image.open(tmp_path / "d0.png").convert("L"))
    assert np.array_equal(gray.pairs[2][0][0][:, :, 0], first)

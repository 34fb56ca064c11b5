import os
from pathlib import Path

import pytest
import torch

# Keep tests light on this 2-core machine (a training run may share it).
torch.set_num_threads(min(2, torch.get_num_threads()))

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("KAKUDAI_SHARED", REPO.parent / "shared")).resolve()
BENCH = SHARED / "data" / "bench"
TRAIN = SHARED / "data" / "train"


@pytest.fixture(scope="session")
def bench_dir() -> Path:
    if not (BENCH / "Set5").is_dir():
        pytest.skip(f"benchmark data not found at {BENCH} (set KAKUDAI_SHARED)")
    return BENCH


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # Derived-data cache shared across tests of one session, never the user's.
    monkeypatch.setenv("KAKUDAI_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def weights_dir(tmp_path, monkeypatch) -> Path:
    """An empty shipped-weights folder in place of kakudai/weights (kakudai.zoo.WEIGHTS_DIR)."""
    from kakudai import zoo
    d = tmp_path / "weights"
    d.mkdir()
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", d)
    return d

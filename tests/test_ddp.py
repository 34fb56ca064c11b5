"""DistributedDataParallel on CPU: a 2-process ``torch.distributed.run`` (gloo)
trains like one process on the same global batch.

Run as a script, this file is the per-rank worker the test launches.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
ITERATIONS = 20  # past the first point where DDP ranks agree on stopping and on the clock


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _overrides(data: tuple[Path, Path], out: Path, name: str) -> list[str]:
    train, val = data
    # Two scales (DDP with unused tails), validation mid-run on rank 0 only
    # while rank 1 waits, gradient clipping after the all-reduce, and a cosine on the
    # time clock: past STOP_CHECK_EVERY iterations, the ranks must share rank 0's clock
    # (or their learning rates, and so their parameters, drift apart).
    return [
        "model.name='ksr-fast'", "model.args={'width': 8, 'blocks': 1}",
        f"data.train_dirs={[str(train)]!r}", f"data.val_dirs={[str(val)]!r}", "data.scales=[2, 3]",
        "data.patch_size=8", "data.batch_size=4", "data.scale_aug=[1.0]",
        "optim.lr=1e-3", "optim.schedule='cosine'", "optim.grad_clip=0.5",
        "optim.clock='time'", "max_minutes=10",
        f"iterations={ITERATIONS}", "log_every=1", "val_every=2", "ckpt_every=0", "seed=3",
        f"out_dir={str(out)!r}", f"name={name!r}", "progress=False",
    ]


def record_batches(trainer) -> list[list[float]]:
    """Wrap ``trainer._batch`` to record, per iteration, one checksum per sample
    of the HR batch this process trains on."""
    seen: list[list[float]] = []
    batch = trainer._batch

    def wrapped(scale: int):
        lr, hr, lr_target = batch(scale)
        seen.append([float(v) for v in hr.double().sum(dim=(1, 2, 3))])
        return lr, hr, lr_target

    trainer._batch = wrapped
    return seen


@pytest.mark.slow
def test_two_process_ddp_matches_single_process(tmp_path) -> None:
    from safetensors.torch import load_file

    from kakudai.train.config import load_config
    from kakudai.train.trainer import Trainer
    from test_train import write_tiny_dataset

    data = write_tiny_dataset(tmp_path / "data")
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--nnodes", "1",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
           __file__, json.dumps(_overrides(data, tmp_path, "ddp")), str(tmp_path / "ranks")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    r0 = load_file(str(tmp_path / "ranks" / "rank0.safetensors"))
    r1 = load_file(str(tmp_path / "ranks" / "rank1.safetensors"))
    assert r0.keys() == r1.keys()
    for k in r0:
        assert torch.equal(r0[k], r1[k]), f"ranks differ in {k}"

    single = Trainer(load_config(None, _overrides(data, tmp_path, "single")))
    start = {k: v.clone() for k, v in single.model.state_dict().items()}
    single_batches = record_batches(single)
    single.fit()
    # Each rank trained on its own half of the same global batch.
    b0 = json.loads((tmp_path / "ranks" / "batches0.json").read_text())
    b1 = json.loads((tmp_path / "ranks" / "batches1.json").read_text())
    assert len(b0) == len(b1) == len(single_batches) == ITERATIONS
    for it, full in enumerate(single_batches):
        assert len(b0[it]) == len(b1[it]) == 2
        assert b0[it] + b1[it] == full, f"iteration {it}: ranks' slices are not the global batch"
    ref = single.model.state_dict()
    moved = 0.0
    for k in ref:
        assert torch.allclose(r0[k], ref[k], rtol=1e-4, atol=1e-6), f"DDP != single process in {k}"
        moved = max(moved, float((ref[k] - start[k]).abs().max()))
    assert moved > 1e-4  # the comparison is not between two untrained models

    # Logging happens on rank 0 only, with the loss averaged over both ranks.
    def losses(run: Path) -> list[float]:
        rows = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
        return [r["loss"] for r in rows if r["kind"] == "train"]
    ddp_losses, single_losses = losses(tmp_path / "ddp"), losses(tmp_path / "single")
    assert len(ddp_losses) == ITERATIONS
    assert all(abs(a - b) <= 1e-5 * max(1.0, abs(b)) for a, b in zip(ddp_losses, single_losses))
    assert (tmp_path / "ddp" / "final.safetensors").exists()
    # The CPU time logged is both ranks' (what a model card reports as CPU-hours).
    last = [json.loads(x) for x in (tmp_path / "ddp" / "log.jsonl").read_text().splitlines()
            if '"train"' in x][-1]
    single_last = [json.loads(x) for x in (tmp_path / "single" / "log.jsonl").read_text().splitlines()
                    if '"train"' in x][-1]
    assert last["ranks"] == 2 and single_last["ranks"] == 1 and last["cpu_s"] > 0
    assert not (tmp_path / "ranks" / "rank2.safetensors").exists()
    for r in (0, 1):
        assert json.loads((tmp_path / "ranks" / f"clock{r}.json").read_text()) == 0.25


def _worker(overrides_json: str, out: str) -> None:
    """One rank: train from the overrides, then save this rank's parameters."""
    import torch.distributed as dist
    from safetensors.torch import save_file

    from kakudai.train.config import load_config
    from kakudai.train.trainer import Trainer

    trainer = Trainer(load_config(None, json.loads(overrides_json) + ["threads=1"]))
    assert trainer.world == 2
    batches = record_batches(trainer)
    trainer.fit()
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / f"batches{trainer.rank}.json").write_text(json.dumps(batches))
    # The training clock every rank uses is rank 0's (0.25 there, 0.75 on rank 1).
    (Path(out) / f"clock{trainer.rank}.json").write_text(
        json.dumps(trainer._from_rank0(0.25 + 0.5 * trainer.rank)))
    state = {k: v.detach().contiguous() for k, v in trainer.model.state_dict().items()}
    save_file(state, str(Path(out) / f"rank{trainer.rank}.safetensors"))
    # Without it, a rank could tear its gloo group down while the other still used it
    # (rank 1 aborted, "terminate called without an active exception", in ~half the runs).
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    _worker(sys.argv[1], sys.argv[2])

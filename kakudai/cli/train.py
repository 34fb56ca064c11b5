"""``kakudai train``: a TOML config (:mod:`kakudai.train.config`) through the one Trainer."""

from __future__ import annotations

import argparse

from .errors import fail

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("train", help="train a model from a TOML config")
    t.add_argument("config", nargs="?", help="TOML config (configs/*.toml)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set optim.lr=1e-3 (repeatable)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    t.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..train.config import load_config, load_run_config
    from ..train.trainer import Trainer

    try:
        if args.resume:
            trainer = Trainer(load_run_config(args.resume, args.set), resume=args.resume)
        else:
            trainer = Trainer(load_config(args.config, args.set))
    except (FileNotFoundError, KeyError, ValueError, TypeError) as e:  # a bad config or missing data
        return fail(e, args.resume or args.config or "train")
    run_dir = trainer.fit()
    if trainer.rank == 0:
        print(f"run directory: {run_dir}")
    return 0

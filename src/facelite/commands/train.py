"""``facelite train``: train or resume a detector from a TOML recipe (needs the ``train`` extra)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train (or resume) a detector from a config file",
                       description="Train a detector from a TOML recipe (see configs/). Checkpoints go to the "
                                   "run folder (default ~/.cache/facelite/runs/<model>); an existing last.pt "
                                   "there is resumed automatically.")
    p.add_argument("--config", required=True, help="TOML recipe, e.g. configs/mobilenetv2-0.35.toml")
    p.add_argument("--epochs", type=int, help="override the schedule length")
    p.add_argument("--stop-after", type=int, help="end this call after N epochs (schedule unchanged; resume later)")
    p.add_argument("--run-dir", help="override the run folder")
    p.add_argument("--threads", type=int, help="override torch threads")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a recipe value (TOML syntax), e.g. --set train.device=cuda; repeatable")
    p.add_argument("--time-budget", type=float, metavar="SECONDS",
                   help="fit the schedule to this wall-clock time: after the first epochs, set the epoch count "
                        "(recorded in the run's config.json) from the measured epoch time")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..train.config import apply_overrides, load_config
    from ..train.trainer import train

    cfg = load_config(args.config)
    apply_overrides(cfg, args.set)
    if args.run_dir:
        cfg.train.run_dir = args.run_dir
    if args.threads:
        cfg.train.threads = args.threads
    run_dir = train(cfg, epochs=args.epochs, stop_after=args.stop_after, time_budget=args.time_budget)
    print(f"run folder: {run_dir}")
    return 0

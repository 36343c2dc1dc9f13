"""`cnnlab train` and `cnnlab finetune`: a run from its settings (flags, a config file, the run
being resumed, the model's recipe), trained into its run directory."""

from __future__ import annotations

import argparse
import os

from ..errors import CnnlabError
from ..registry import get_model_info
from ..train import train
from ..train.folder import check_before_training
from ..train.settings import configure
from ..train.state import restarted_job
from .options import add_train_options, given_settings


def register(sub) -> None:
    p = sub.add_parser("train", help="train a zoo model on a dataset (default recipe per model and dataset)")
    add_train_options(p)
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("finetune", help="transfer learning: train from pretrained weights with a strategy")
    add_train_options(p)
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    get_model_info(args.model)  # unknown names fail before any data is read
    cfg = configure(args.model, given_settings(args), args.config)
    if args.command == "finetune" and not cfg.weights:
        raise CnnlabError(
            "finetune starts from trained weights: give --weights imagenet, a weights file or a "
            "cnnlab run (`cnnlab train` trains from scratch)"
        )
    lead = os.environ.get("RANK", "0") == "0"  # in a torchrun job the first process speaks for all
    if restarted_job(cfg):  # torchrun --max-restarts: the same command again, after a worker died
        cfg.resume, cfg.overwrite = True, False
        if lead:
            print(f"torchrun restarted the job: continuing from the last checkpoint in {cfg.out}")
    if args.lr is not None and cfg.schedule == "table":  # a recipe's lr is replaced silently; a flag is not
        raise CnnlabError("--lr-table gives the table schedule's learning rates; leave --lr out")
    check_before_training(cfg)  # settings, a run that would be replaced, the folder: before anything is printed
    if lead:
        print(
            f"training {cfg.model} on {cfg.dataset}: {cfg.epochs} epochs, batch {cfg.batch_size}, "
            f"{cfg.optimizer} lr {cfg.lr_table or cfg.lr}, {cfg.schedule} schedule"
            + (f", run directory {cfg.out}" if cfg.out else "")
        )
    result = train(cfg)
    t = result["test"]
    if lead:
        print(
            f"test pixel accuracy {100 * t['top1']:.2f}%, mean IoU {100 * t['miou']:.2f}%"
            if "miou" in t
            else f"test top-1 {100 * t['top1']:.2f}%"
            + (f", top-5 {100 * t['top5']:.2f}%" if result["num_classes"] > 5 else "")
            if "top1" in t
            else f"test RMSE {t['rmse']:.4f}, MAE {t['mae']:.4f} (in the target's units)"
        )
    return 0

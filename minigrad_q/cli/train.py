"""``minigrad-q train``: the options of TrainConfig on the command line, and the run."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ..checkpoint import CheckpointError, read_metadata
from ..train import RUN_FIELDS, ConfigError, TrainConfig, TrainingDiverged, train
from .usage import UsageError, poll_idle_if

TRAIN_OPTIONS = ("model", "dataset", "data_dir", "epochs", "batch_size", "lr", "optimizer", "momentum",
                 "weight_decay", "schedule", "label_smoothing", "device", "seed", "save", "resume", "json_path", "train_size",
                 "quant", "wbits", "abits", "first_last_bits", "qnoise_p", "dsq_alpha", "learn_alpha", "convert",
                 "init_from", "pretrain_epochs", "distributed", "sync_batchnorm")


def train_config(args: argparse.Namespace) -> Any:
    """The TrainConfig for the options given: defaults, then (with --resume) the checkpoint's settings,
    then the options on the command line."""
    settings: dict[str, Any] = {}
    if args.resume:
        try:
            stored = read_metadata(args.resume).get("config", {})
        except CheckpointError as error:
            raise UsageError(f"train: {error}") from None
        settings.update({name: stored[name] for name in (*RUN_FIELDS, "epochs", "data_dir") if name in stored})
    settings.update({name: getattr(args, name) for name in TRAIN_OPTIONS if getattr(args, name) is not None})
    if args.no_progress:
        settings["progress"] = False
    return TrainConfig(**settings)


def run(args: argparse.Namespace) -> int:
    config = train_config(args)
    try:
        with poll_idle_if(args.poll_idle, "train"):
            train(config)
    except KeyboardInterrupt:
        if config.save and os.path.isfile(config.save):
            print(f"minigrad-q: interrupted; {config.save} holds the run up to its last finished epoch: continue it "
                  f"with minigrad-q train --resume {config.save}", file=sys.stderr)
        else:
            print("minigrad-q: interrupted" + ("" if config.save else " (without --save there is nothing to resume)"),
                  file=sys.stderr)
        return 130
    except (ConfigError, CheckpointError, TrainingDiverged) as error:
        raise UsageError(f"train: {error}") from None
    except OSError as error:
        raise UsageError(f"train: {error.filename or ''}: {error.strerror or error}") from None
    return 0


def _bits_or_same(text: str) -> int | str:
    if text == "same":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of bits or 'same', got {text!r}") from None


def add_command(commands: Any) -> None:
    command = commands.add_parser(
        "train", help="train a CNN (LeNet-5 on the bundled digits by default)",
        description="Train a model, evaluating on the test split after every epoch. With no options: LeNet-5 on "
                    "the bundled 8x8 digits, on the CPU, in seconds. With --resume the checkpoint's settings are "
                    "the defaults; options that differ from them are refused.",
    )
    command.add_argument("--model", metavar="NAME", help="lenet5 (default) or toycnn")
    command.add_argument("--dataset", metavar="NAME", help="digits (default, bundled), fashion-mnist, mnist or synthetic")
    command.add_argument("--data-dir", metavar="DIR", help="folder of the dataset's files (fashion-mnist, mnist)")
    command.add_argument("--epochs", metavar="N", type=int, help="total epochs (default 40)")
    command.add_argument("--batch-size", metavar="B", type=int, help="training batch size (default 64)")
    command.add_argument("--lr", type=float, help="learning rate (default 0.05; 0.005 when fine-tuning a float model)")
    command.add_argument("--optimizer", metavar="NAME", help="sgd (default, momentum 0.9) or adam")
    command.add_argument("--momentum", metavar="M", type=float, help="SGD momentum (default 0.9)")
    command.add_argument("--weight-decay", metavar="WD", type=float, help="L2 weight decay (default 5e-4)")
    command.add_argument("--schedule", metavar="NAME",
                         help="learning-rate schedule: cosine (default, to 0 at the end) or constant")
    command.add_argument("--label-smoothing", metavar="EPS", type=float,
                         help="label smoothing of the training loss (default 0.2)")
    command.add_argument("--device", help="cpu (default), cuda or cuda:N")
    command.add_argument("--seed", metavar="S", type=int, help="seed of initialisation and shuffling (default 0)")
    command.add_argument("--train-size", type=int, metavar="N", help="train on the first N images only (quick runs)")
    command.add_argument("--save", metavar="PATH", help="write a checkpoint (.safetensors) here after every epoch")
    command.add_argument("--resume", metavar="PATH", help="continue the run saved in this checkpoint")
    command.add_argument("--json", dest="json_path", metavar="PATH", help="write the summary as JSON")
    command.add_argument("--no-progress", action="store_true", help="no progress bars (they show only on a terminal anyway)")
    command.add_argument("--poll-idle", action="store_true",
                         help="idle CPUs poll instead of halting during the run (Linux, root; see minigrad_q.poll_idle_cpus)")
    parallel = command.add_argument_group("data-parallel training (pip install -e '.[mpi]')")
    parallel.add_argument("--distributed", action="store_true", default=None,
                          help="train on every rank of mpiexec -n N, each on its shard of every batch "
                               "(--batch-size stays the global batch); rank 0 reports and saves")
    parallel.add_argument("--sync-batchnorm", action="store_true", default=None,
                          help="with --distributed: BatchNorm statistics over every rank's shard together")
    qat = command.add_argument_group("quantization-aware training")
    qat.add_argument("--quant", metavar="METHOD", help="quantize with ste, dsq, lsq, qnoise or pact (default: float)")
    qat.add_argument("--wbits", metavar="B", type=int, help="weight bits (default 4)")
    qat.add_argument("--abits", metavar="B", type=int, help="activation bits (default 4)")
    qat.add_argument("--first-last-bits", metavar="B", type=_bits_or_same,
                     help="bits of the first conv and the last linear layer (default 8), or 'same' as the rest")
    qat.add_argument("--qnoise-p", metavar="P", type=float,
                     help="QuantNoise: fraction of weights quantized per step (default 0.5)")
    qat.add_argument("--dsq-alpha", metavar="A", type=float, help="DSQ: initial alpha in (0, 1) (default 0.2)")
    qat.add_argument("--learn-alpha", action=argparse.BooleanOptionalAction, default=None,
                     help="DSQ: learn alpha (default), or keep it fixed (--no-learn-alpha)")
    qat.add_argument("--init-from", metavar="PATH",
                     help="start from this float checkpoint (train --save without --quant): quantize it, fine-tune it")
    qat.add_argument("--pretrain-epochs", metavar="N", type=int,
                     help="train the float model for N epochs first (lr 0.05 unless --lr), then --epochs of QAT")
    qat.add_argument("--convert", action="store_true", default=None,
                     help="after training, convert to an integer model and report its accuracy too")
    command.set_defaults(run=run)

"""Training a model on a dataset: ``train(TrainConfig(...))`` and ``minigrad-q train``.

Each epoch trains on the train split (a tqdm bar shows loss, accuracy and
images/s), evaluates on the test split and prints one log line; the end prints
a summary and returns it as a dict (also written as JSON with ``json_path``).

The defaults train LeNet-5 on the bundled 8x8 digits for 40 epochs with SGD
(lr 0.05, momentum 0.9, weight decay 5e-4, batch 64), a cosine learning-rate
schedule and label smoothing 0.2: ``minigrad-q train`` with no arguments
reaches 98.6% test accuracy (seed 0; over seeds 0-39: 97.2-99.7%, mean
98.3%) in about 3 seconds on two CPU cores.

Inside a training step nothing moves between host and device: on a GPU the
datasets live on the device when they fit (each batch is gathered there), the
running loss and accuracy are summed on the device, and the host reads them
every ``log_every`` steps, which is when divergence (a NaN or inf loss) and bad
input found by a kernel (a class target out of range) are reported.

Reproducibility: ``seed`` seeds the generators (``mq.manual_seed``) before the
model is built, and the order of epoch ``e`` depends on (``seed``, ``e``)
alone (``DataLoader.set_epoch``). With ``save`` a checkpoint is written after
every epoch; ``resume`` restores the weights, the optimizer and scheduler
state, the data loader's state and the generators' states, so a run resumed
after epoch k ends with exactly the weights of an uninterrupted run with the
same settings.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import backend, checkpoint, data, distributed, nn, optim, quant
from .core import collective, no_grad
from .models import MODELS, build_model
from .ops import cross_entropy
from .quant import METHOD_OPTIONS, METHODS, NonFiniteGrid

__all__ = ["TrainConfig", "ConfigError", "TrainingDiverged", "train", "evaluate", "model_from_checkpoint", "RUN_FIELDS"]

OPTIMIZERS = ("sgd", "adam")
# settings that define the run: a resumed run must use the checkpoint's values
RUN_FIELDS = ("model", "dataset", "batch_size", "lr", "optimizer", "momentum", "weight_decay", "schedule",
              "label_smoothing", "seed", "train_size", "quant", "wbits", "abits", "first_last_bits", "qnoise_p",
              "dsq_alpha", "learn_alpha", "init_from", "pretrain_epochs")
SCHEDULES = ("cosine", "constant")
FLOAT_LR = 0.05  # training from scratch
FINETUNE_LR = 0.005  # quantization-aware fine-tuning of a trained float model, as the QAT papers do
# the settings that apply to some quantization methods only, with their defaults there
METHOD_SETTINGS: dict[str, tuple[tuple[str, ...], Any]] = {
    "wbits": (tuple(METHODS), 4),
    "abits": (tuple(METHODS), 4),
    "first_last_bits": (tuple(METHODS), 8),
    "qnoise_p": (("qnoise",), METHOD_OPTIONS[("weight", "qnoise")]["qnoise_p"]),
    "dsq_alpha": (("dsq",), METHOD_OPTIONS[("weight", "dsq")]["dsq_alpha"]),
    "learn_alpha": (("dsq",), METHOD_OPTIONS[("weight", "dsq")]["learn_alpha"]),
}


class ConfigError(ValueError):
    """A training setting that cannot work (unknown name, missing folder, bad number)."""


class TrainingDiverged(RuntimeError):
    """The loss or the weights became NaN or inf."""


def _diverged(description: str, step: int) -> TrainingDiverged:
    return TrainingDiverged(f"training diverged in {description or 'this epoch'} by step {step}: the loss or the weights "
                            "became NaN or inf; try a lower learning rate")




@dataclass
class TrainConfig:
    """Settings of one training run; the defaults are ``minigrad-q train``'s."""

    model: str = "lenet5"
    dataset: str = "digits"
    data_dir: str | None = None
    epochs: int = 40
    batch_size: int = 64
    lr: float | None = None  # None: FLOAT_LR, or FINETUNE_LR when quantizing a float model (init_from, pretrain_epochs)
    optimizer: str = "sgd"  # "sgd" or "adam"
    momentum: float = 0.9  # SGD only
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # "cosine" (annealed to 0 over the epochs) or "constant"
    label_smoothing: float = 0.2  # of the training loss; the test loss is plain cross-entropy
    device: str = "cpu"
    seed: int = 0
    save: str | None = None  # checkpoint written after every epoch
    resume: str | None = None  # checkpoint to continue from
    json_path: str | None = None  # summary written here as JSON
    train_size: int | None = None  # use only the first N training images (quick runs)
    eval_batch_size: int = 1000
    log_every: int = 10  # steps between progress-bar refreshes (each reads loss/accuracy from the device)
    progress: bool | None = None  # tqdm bars: None = only when stderr is a terminal
    verbose: bool = True  # print the per-epoch log lines and the summary
    quant: str | None = None  # quantization-aware training: "ste", "dsq", "lsq", "qnoise" or "pact" (quant.METHODS)
    # Settings of some quantization methods only (METHOD_SETTINGS); None: the method's default (resolved()).
    wbits: int | None = None  # weight bits (4)
    abits: int | None = None  # activation bits (4)
    first_last_bits: int | str | None = None  # bits of the first and last layers (8); "same": wbits and abits
    qnoise_p: float | None = None  # QuantNoise: the fraction of weights quantized in each training step (0.5)
    dsq_alpha: float | None = None  # DSQ: the initial alpha (0.2)
    learn_alpha: bool | None = None  # DSQ: alpha is a learnable parameter (True)
    convert: bool = False  # after training, convert to an integer model and report its accuracy too
    init_from: str | None = None  # warm start: a float checkpoint (train --save without quant) to quantize and fine-tune
    pretrain_epochs: int = 0  # warm start in one run: this many float epochs first, then `epochs` quantized ones
    distributed: bool = False  # data parallel over the ranks of mpiexec: batch_size is the global batch
    sync_batchnorm: bool = False  # distributed: BatchNorm statistics over every rank's shard (default: each its own)

    def run_settings(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in RUN_FIELDS}

    @property
    def warm_start(self) -> bool:
        """Whether the quantized model starts from a trained float one."""
        return self.quant is not None and (self.init_from is not None or self.pretrain_epochs > 0)

    def resolved(self) -> TrainConfig:
        """This config with the defaults that depend on other settings filled in: the learning rate, and
        the settings of the quantization method in use."""
        filled: dict[str, Any] = {}
        if self.lr is None:
            filled["lr"] = FINETUNE_LR if self.warm_start else FLOAT_LR
        for name, (methods, default) in METHOD_SETTINGS.items():
            if getattr(self, name) is None and self.quant in methods:
                filled[name] = default
        return dataclasses.replace(self, **filled)


# ---------------------------------------------------------------- building blocks
def _check(config: TrainConfig) -> None:
    if config.model.lower() not in MODELS:
        raise ConfigError(f"unknown model {config.model!r}; known models: {', '.join(sorted(MODELS))}")
    if config.optimizer not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {config.optimizer!r}; expected one of: {', '.join(OPTIMIZERS)}")
    if config.schedule not in SCHEDULES:
        raise ConfigError(f"unknown schedule {config.schedule!r}; expected one of: {', '.join(SCHEDULES)}")
    for name in ("epochs", "batch_size", "eval_batch_size", "log_every"):
        value = getattr(config, name)
        if not isinstance(value, int) or value < (0 if name == "epochs" else 1):
            raise ConfigError(f"{name.replace('_', '-')} must be {'>= 0' if name == 'epochs' else 'at least 1'}, got {value!r}")
    if config.train_size is not None and config.train_size < 1:
        raise ConfigError(f"train-size must be at least 1, got {config.train_size}")
    if isinstance(config.seed, bool) or not isinstance(config.seed, int) or config.seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {config.seed!r}")
    if config.lr is not None and not 0 < config.lr < math.inf:
        raise ConfigError(f"lr must be positive and finite, got {config.lr}")
    for name in ("momentum", "weight_decay"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
            raise ConfigError(f"{name.replace('_', '-')} must be a finite number >= 0, got {value!r}")
    if not 0 <= config.label_smoothing < 1:
        raise ConfigError(f"label-smoothing must be in [0, 1), got {config.label_smoothing}")
    if config.quant is not None and config.quant not in METHODS:
        raise ConfigError(f"unknown quantization method {config.quant!r}; expected one of: {', '.join(METHODS)}")
    if config.convert and config.quant is None:
        raise ConfigError("convert needs a quantized model: give a quantization method too (e.g. quant='dsq')")
    for name, (methods, _) in METHOD_SETTINGS.items():
        if getattr(config, name) is not None and config.quant not in methods:
            needs = "a quantization method" if len(methods) > 1 else f"quant={methods[0]!r}"
            raise ConfigError(f"{name.replace('_', '-')} applies to {needs} only, and this run has "
                              f"quant={config.quant!r}: it would change nothing")
    for name in ("wbits", "abits", "first_last_bits"):
        value = getattr(config, name)
        if value is None or (name == "first_last_bits" and value == "same"):
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 8:
            also = " or 'same'" if name == "first_last_bits" else ""
            raise ConfigError(f"{name.replace('_', '-')} must be an integer from 1 to 8{also}, got {value!r}")
    signed_bits = (config.wbits, config.first_last_bits, config.abits if config.first_last_bits == "same" else None)
    if config.quant == "lsq" and 1 in signed_bits:  # weights, and the first layer's input (the raw image), are signed
        raise ConfigError("lsq needs at least 2 bits for weights and for the first layer's (signed) input: a signed "
                          "1-bit grid [-1, 0] has no positive level for LSQ's step")
    if config.qnoise_p is not None and not 0 <= config.qnoise_p <= 1:
        raise ConfigError(f"qnoise-p must be in [0, 1], got {config.qnoise_p}")
    if config.dsq_alpha is not None and not 0 < config.dsq_alpha < 1:
        raise ConfigError(f"dsq-alpha must be in (0, 1), got {config.dsq_alpha}")
    if config.learn_alpha is not None and not isinstance(config.learn_alpha, bool):
        raise ConfigError(f"learn-alpha must be True or False, got {config.learn_alpha!r}")
    if config.data_dir is not None and not os.path.isdir(config.data_dir):
        raise ConfigError(f"data directory {config.data_dir} does not exist")
    if isinstance(config.pretrain_epochs, bool) or not isinstance(config.pretrain_epochs, int) or config.pretrain_epochs < 0:
        raise ConfigError(f"pretrain-epochs must be an integer >= 0, got {config.pretrain_epochs!r}")
    if config.pretrain_epochs and config.quant is None:
        raise ConfigError("pretrain-epochs trains a float model to quantize: give a quantization method too")
    if config.pretrain_epochs and config.init_from:
        raise ConfigError("pretrain-epochs and init-from are two ways to start from a float model: give one, not both")
    if config.init_from and not config.resume and not os.path.isfile(config.init_from):  # a resumed run has its weights
        raise ConfigError(f"checkpoint {config.init_from} to start from does not exist")
    if config.resume and not os.path.isfile(config.resume):
        raise ConfigError(f"checkpoint {config.resume} to resume from does not exist")
    for path in (config.save, config.json_path):
        if path:
            _check_writable(path)
    if config.sync_batchnorm and not config.distributed:
        raise ConfigError("sync-batchnorm synchronises BatchNorm over the ranks of a distributed run: add --distributed")


def _check_writable(path: str) -> None:
    """A file can be written at `path` (an existing file is replaced), tried before any training: a temporary
    file is made beside it and removed."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ConfigError(f"cannot write {path}: its folder does not exist")
    if os.path.isdir(path):
        raise ConfigError(f"cannot write {path}: it is a folder; give a file name in it")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".minigrad_q-write-test-"):
            pass
    except OSError as error:
        raise ConfigError(f"cannot write {path}: {error.strerror or error}") from None


def _communicator(config: TrainConfig) -> distributed.Communicator | None:
    """The job's communicator for a distributed run (None otherwise); refuses one that cannot start."""
    if not config.distributed:
        return None
    try:
        return distributed.init()
    except distributed.DistributedError as error:
        raise ConfigError(str(error)) from None


def _check_distributed(config: TrainConfig, comm: distributed.Communicator) -> None:
    """Every rank runs the same settings, and the global batches split evenly over the ranks."""
    distributed.check_same_on_every_rank(comm, "training settings", dataclasses.asdict(config))
    for name in ("batch_size", "eval_batch_size"):
        if getattr(config, name) % comm.size:
            raise ConfigError(f"{name.replace('_', '-')} {getattr(config, name)} (the global batch) does not divide "
                              f"evenly over {comm.size} ranks")


def _sum_over_ranks(*values: Any) -> list[float]:
    """Python floats of device or host scalars, each summed over the ranks of a distributed run."""
    backend.raise_device_errors()
    totals = collective.all_sum(backend.asarray([float(value) for value in values], dtype=backend.float64))
    return [float(total) for total in totals]


def _datasets(config: TrainConfig) -> tuple[Any, Any]:
    try:
        train_set = data.load_dataset(config.dataset, split="train", data_dir=config.data_dir)
        test_set = data.load_dataset(config.dataset, split="test", data_dir=config.data_dir)
    except (ValueError, OSError, RuntimeError) as error:  # unknown name, missing or damaged files: the loader says which
        raise ConfigError(str(error)) from None
    if config.train_size is not None and config.train_size > len(train_set):
        _say(config, f"train-size {config.train_size:,} is more than the {len(train_set):,} training images of "
                     f"{config.dataset}: training on all of them")
    if config.train_size is not None and config.train_size < len(train_set):
        size = config.train_size
        train_set = data.ImageDataset(
            train_set.images[:size], train_set.labels[:size], name=train_set.name, split=f"train[:{size}]",
            num_classes=train_set.num_classes, mean=train_set.mean, std=train_set.std, classes=train_set.classes,
        )
    return train_set, test_set


DEVICE_DATA_SHARE = 0.5  # datasets taking at most this share of a GPU's free memory are moved there whole


def _datasets_on(device: str, *datasets: Any) -> tuple[Any, ...]:
    """The datasets on a GPU `device` when together they fit in DEVICE_DATA_SHARE of its free memory, so
    that each batch is gathered there (no host-to-device copy per batch); else as they are."""
    if device == "cpu" or sum(dataset.nbytes for dataset in datasets) > DEVICE_DATA_SHARE * backend.free_memory(device):
        return datasets
    return tuple(dataset.to(device) for dataset in datasets)


def _model_options(test_set: Any) -> dict[str, Any]:
    channels, height, width = test_set.shape
    if height != width:
        raise ConfigError(f"the models need square images, the dataset has {height}x{width}")
    return {"in_channels": channels, "num_classes": test_set.num_classes, "input_size": height}


def _load_float_start(config: TrainConfig, options: dict[str, Any], model: nn.Module) -> None:
    """init_from: the float checkpoint's weights into `model`, once it is known to be a float run of
    this model on this dataset."""
    saved = checkpoint.load(config.init_from)
    where, stored, info = f"init-from {config.init_from}", saved.config, saved.model
    if stored.get("quant"):
        raise ConfigError(f"{where}: the checkpoint holds a model quantized with {stored['quant']} "
                          f"(W{stored.get('wbits')}A{stored.get('abits')}); start from a float checkpoint "
                          "(one trained without quant)")
    if stored.get("dataset") != config.dataset:
        raise ConfigError(f"{where}: the checkpoint was trained on {stored.get('dataset')}, this run uses {config.dataset}")
    if info.get("name") != config.model or info.get("options") != options:
        raise ConfigError(f"{where}: the checkpoint holds a {info.get('name')} with {info.get('options')}, "
                          f"this run builds a {config.model} with {options}")
    checkpoint.restore(saved, model)


def _model(config: TrainConfig, options: dict[str, Any], float_model: nn.Module | None = None) -> nn.Module:
    """The named model (or `float_model`, trained by the pretrain phase), its weights from init_from when
    given; with `quant`, its conv and linear layers swapped for quantized ones."""
    model = build_model(config.model, **options) if float_model is None else float_model
    if config.init_from and not config.resume:  # a resumed run restores its own quantized weights
        _load_float_start(config, options, model)
    if config.quant is None:
        return model
    weight, act = METHODS[config.quant]
    method_options: dict[str, Any] = {}
    if "dsq" in (weight, act):
        method_options.update(dsq_alpha=config.dsq_alpha, learn_alpha=config.learn_alpha)
    if weight == "qnoise":
        method_options.update(qnoise_p=config.qnoise_p)
    edge_bits = None if config.first_last_bits == "same" else config.first_last_bits
    return quant.prepare_qat(model, weight=weight, act=act, wbits=config.wbits, abits=config.abits,
                             first_last_bits=edge_bits, **method_options)


def _optimizer(config: TrainConfig, model: nn.Module) -> Any:
    if config.optimizer == "sgd":
        return optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def _scheduler(config: TrainConfig, optimizer: Any) -> Any:
    if config.schedule == "cosine":
        return optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(config.epochs, 1))
    return None


def _progress_bar(total: int, description: str, enabled: bool | None) -> Any:
    """A tqdm bar on stderr, as wide as the terminal. A terminal that reports a size of 0 x 0 (under `script`
    and some CI runners) gets 80 x 24: tqdm hides every bar below a screen height of 0."""
    from tqdm.auto import tqdm

    sized = _terminal_size() != (0, 0)
    return tqdm(total=total, desc=description, unit="batch", leave=False, dynamic_ncols=sized,
                ncols=None if sized else 80, nrows=None if sized else 24,
                disable=(not sys.stderr.isatty()) if enabled is None else not enabled)


def _terminal_size() -> tuple[int, int]:
    """(columns, lines) of the terminal on stderr; (0, 0) where it reports none or is not a terminal."""
    try:
        size = os.get_terminal_size(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):  # not a terminal, or stderr replaced by an object without a file
        return (0, 0)
    return (size.columns, size.lines) if size.columns and size.lines else (0, 0)


# ---------------------------------------------------------------- one epoch
def train_one_epoch(model: nn.Module, optimizer: Any, loader: Any, description: str = "", log_every: int = 10,
                    progress: bool | None = None, label_smoothing: float = 0.0) -> dict[str, Any]:
    """One pass over `loader`; returns mean loss, accuracy, images, seconds, images/s, and each
    parameter's gradient norm averaged over the steps where the bar refreshes (every `log_every`
    steps and the last one)."""
    model.train()
    parameters = list(model.named_parameters())
    xp: Any = None
    loss_sum: Any = None
    correct: Any = None
    norm_sums: dict[str, Any] = {}  # on the device, read once at the end
    norm_steps = 0
    seen = 0
    start = time.perf_counter()
    with _progress_bar(len(loader), description, progress) as bar, backend.quiet_float_errors():
        for step, (images, labels) in enumerate(loader, 1):
            try:
                logits = model(images)
            except NonFiniteGrid:  # a quantizer's grid observed from NaN or inf weights or activations
                raise _diverged(description, step) from None
            loss = cross_entropy(logits, labels, label_smoothing=label_smoothing)
            optimizer.zero_grad()
            loss.backward()
            batch = labels.shape[0]
            if isinstance(optimizer, distributed.DistributedOptimizer):
                optimizer.step(samples=batch)  # the gradients averaged over the ranks' shards, by their sizes
            else:
                optimizer.step()
            seen += batch
            if xp is None:  # running sums live on the device: no host sync per step
                xp = backend.get_array_module(loss.data)
                loss_sum = xp.zeros((), dtype=backend.float64)
                correct = xp.zeros((), dtype=backend.int64)
            loss_sum += loss.data * batch
            correct += (logits.data.argmax(axis=1) == labels.data).sum()
            bar.update(1)
            if step % log_every == 0 or step == len(loader):
                norm_steps += 1
                for name, parameter in parameters:
                    if parameter.grad is not None:
                        norm = xp.linalg.norm(parameter.grad.data.reshape(-1))
                        norm_sums[name] = norm_sums[name] + norm if name in norm_sums else norm
                backend.raise_device_errors()
                if not backend.is_finite_all(loss_sum):
                    raise _diverged(description, step)
                if not bar.disable:
                    elapsed = time.perf_counter() - start
                    bar.set_postfix(loss=f"{float(loss_sum) / seen:.4f}", acc=f"{float(correct) / seen:.2%}",
                                    img_s=f"{seen / elapsed:.0f}", refresh=False)
    seconds = time.perf_counter() - start
    loss_total = correct_total = 0.0
    if seen:  # in a distributed run, over every rank's shard (every rank has as many batches)
        loss_total, correct_total, total_seen = _sum_over_ranks(loss_sum, correct, seen)
        seen = int(total_seen)
    return {
        "loss": loss_total / seen if seen else float("nan"),
        "accuracy": correct_total / seen if seen else float("nan"),
        "images": seen,
        "seconds": seconds,
        "images_per_s": seen / seconds if seconds > 0 else float("nan"),
        "grad_norms": {name: float(total) / norm_steps for name, total in norm_sums.items()},
    }


def evaluate(model: nn.Module, loader: Any) -> dict[str, float]:
    """Mean cross-entropy and accuracy over `loader`, in eval mode without a graph (in a distributed run,
    over every rank's shard of the loader)."""
    model.eval()
    loss_sum: Any = None
    correct: Any = None
    seen = 0
    with no_grad():
        for images, labels in loader:
            logits = model(images)
            loss = cross_entropy(logits, labels, reduction="sum").data
            hits = (logits.data.argmax(axis=1) == labels.data).sum()
            loss_sum = loss if loss_sum is None else loss_sum + loss
            correct = hits if correct is None else correct + hits
            seen += labels.shape[0]
    loss_total, correct_total, total_seen = _sum_over_ranks(0.0 if loss_sum is None else loss_sum,
                                                            0 if correct is None else correct, seen)
    seen = int(total_seen)
    if not seen:
        return {"loss": float("nan"), "accuracy": float("nan"), "correct": 0, "images": 0}
    return {"loss": loss_total / seen, "accuracy": correct_total / seen, "correct": int(correct_total), "images": seen}


def integer_model_path(checkpoint_path: str) -> str:
    """Where --convert writes the integer model beside the checkpoint: run.safetensors -> run.int8.safetensors."""
    stem = checkpoint_path[: -len(".safetensors")] if checkpoint_path.endswith(".safetensors") else checkpoint_path
    return stem + ".int8.safetensors"


def evaluate_integer(model: nn.Module, integer_model: Any, loader: Any) -> dict[str, float]:
    """The integer model's test accuracy, and how often its predicted class agrees with the
    fake-quant model's it was converted from."""
    model.eval()
    correct = agree = seen = 0
    with no_grad():
        for images, labels in loader:
            expected = model(images).data.argmax(axis=1)
            predicted = integer_model(images).data.argmax(axis=1)
            correct += int((predicted == labels.data).sum())
            agree += int((predicted == expected).sum())
            seen += labels.shape[0]
    correct, agree, seen = _sum_over_ranks(correct, agree, seen)
    return {"accuracy": correct / seen if seen else float("nan"), "agreement": agree / seen if seen else float("nan")}


# ---------------------------------------------------------------- the run
def _resume(config: TrainConfig, model: nn.Module, optimizer: Any, scheduler: Any,
            loader: Any, device: str) -> tuple[int, list[dict[str, Any]]]:
    assert config.resume is not None
    saved = checkpoint.load(config.resume)
    stored = saved.config
    fixed = (*RUN_FIELDS, "epochs") if config.schedule == "cosine" else RUN_FIELDS  # the schedule spans the epochs
    for name in fixed:
        if name in stored and stored[name] != getattr(config, name):
            hint = (" A run's cosine schedule spans its epochs, so it cannot be made longer; a run trained with "
                    "--schedule constant can (resume it with a larger --epochs)") if name == "epochs" else ""
            raise ConfigError(
                f"cannot resume from {config.resume}: it was trained with {name.replace('_', '-')}={stored[name]!r}, "
                f"this run asks for {getattr(config, name)!r} (a resumed run keeps the checkpoint's settings).{hint}"
            )
    checkpoint.restore(saved, model, optimizer, device=device)
    if scheduler is not None:
        try:
            scheduler.load_state_dict(saved.extra["scheduler"])
        except (KeyError, TypeError, ValueError) as error:
            raise checkpoint.CheckpointError(f"checkpoint {config.resume}: no usable scheduler state ({error})") from None
    if saved.loader:
        loader.load_state_dict(saved.loader)
    try:
        checkpoint.set_rng_states(saved.rng)
    except checkpoint.CheckpointError as error:
        raise checkpoint.CheckpointError(f"checkpoint {config.resume}: {error}") from None
    return saved.epoch, list(saved.extra.get("history", []))


def _epochs(count: int) -> str:
    return f"{count} epoch" + ("" if count == 1 else "s")


def _say(config: TrainConfig, line: str) -> None:
    if config.verbose:
        print(line, flush=True)


def _convert(config: TrainConfig, model: Any, test_loader: Any, summary: dict[str, Any], writes: bool = True) -> None:
    """--convert: the integer model's test accuracy and agreement into `summary` (and its file with --save,
    where this process `writes`); a model that cannot be converted (weights grown without bound) gets
    summary["integer_error"] instead."""
    try:
        integer_model = quant.convert(model)
    except quant.RequantizationOverflow as error:
        summary["integer_error"] = str(error)
        _say(config, f"integer model: not converted: {error}")
        return
    integer = evaluate_integer(model, integer_model, test_loader)
    summary.update(integer_test_accuracy=integer["accuracy"], integer_agreement=integer["agreement"])
    saved = ""
    if config.save:
        path = integer_model_path(config.save)
        if writes:
            integer_model.save(path)
        summary["integer_model_path"] = path
        saved = f"; saved to {path}"
    _say(config, f"integer model: test accuracy {integer['accuracy']:.2%} (fake-quant model "
                 f"{summary['test_accuracy']:.2%}); predictions agree on {integer['agreement']:.2%} "
                 f"of the test images{saved}")


def model_from_checkpoint(path: str) -> tuple[nn.Module, Any, TrainConfig]:
    """(model in eval mode, checkpoint, its run's settings) of a `train --save` checkpoint: the named model,
    its QAT layers rebuilt as the run made them when it was quantized, the saved weights restored."""
    saved = checkpoint.load(path)
    settings = {name: saved.config[name] for name in (*RUN_FIELDS, "epochs", "data_dir") if name in saved.config}
    try:
        config = TrainConfig(**settings).resolved()
        model = _model(dataclasses.replace(config, init_from=None), saved.model["options"])
        checkpoint.restore(saved, model)
    except (KeyError, TypeError, ValueError) as error:
        raise checkpoint.CheckpointError(f"checkpoint {path}: cannot rebuild its model ({error})") from None
    return model.eval(), saved, config


def float_checkpoint_path(checkpoint_path: str) -> str:
    """Where pretrain_epochs saves the float model beside the checkpoint: run.safetensors -> run.float.safetensors."""
    stem = checkpoint_path[: -len(".safetensors")] if checkpoint_path.endswith(".safetensors") else checkpoint_path
    return stem + ".float.safetensors"


def train(config: TrainConfig | None = None, on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
          **overrides: Any) -> dict[str, Any]:
    """Train as `config` says (fields may also be given as keyword arguments); returns the summary dict.

    With `pretrain_epochs` N the run has two phases: N float epochs (the float defaults, lr FLOAT_LR
    unless `lr` is given; with `save`, checkpoints go to ``float_checkpoint_path(save)``), then `epochs`
    quantization-aware epochs that fine-tune that model. `init_from` starts the quantized model from a
    float checkpoint instead. `on_epoch_end(epoch, record)` is called after each epoch's checkpoint is
    written (in the quantized phase).
    """
    start = time.perf_counter()
    config = dataclasses.replace(config or TrainConfig(), **overrides)
    if config.resume and not config.save:
        config = dataclasses.replace(config, save=config.resume)  # a resumed run goes on saving where it left off
    comm = _communicator(config)
    if comm is None or comm.size == 1:
        return _train(config, on_epoch_end, start, comm)
    try:
        _check_distributed(config, comm)
        if comm.rank:  # rank 0 alone reports and writes the summary
            config = dataclasses.replace(config, verbose=False, progress=False, json_path=None)
        return _train(config, on_epoch_end, start, comm)
    except BaseException as error:  # noqa: BLE001  (any failure on one rank must end them all, or the rest hang)
        distributed.abort_on_error(comm, error, "train")
        raise


def _train(config: TrainConfig, on_epoch_end: Callable[[int, dict[str, Any]], None] | None, start: float,
           comm: distributed.Communicator | None) -> dict[str, Any]:
    _check(config)
    float_model, pretrained = None, None
    if config.pretrain_epochs and not config.resume:  # a resumed run restores the quantized phase
        phase = dataclasses.replace(config, quant=None, epochs=config.pretrain_epochs, pretrain_epochs=0, json_path=None,
                                    convert=False, save=config.save and float_checkpoint_path(config.save),
                                    **dict.fromkeys(METHOD_SETTINGS))
        _say(config, f"phase 1 of 2: {_epochs(config.pretrain_epochs)} of float training")
        float_model, pretrained = _run(phase.resolved(), None, comm)
        _say(config, f"phase 2 of 2: {_epochs(config.epochs)} of quantization-aware fine-tuning")
    model, summary = _run(config.resolved(), on_epoch_end, comm, float_model)
    if pretrained is not None:
        summary["pretrain"] = {name: pretrained[name] for name in ("test_accuracy", "wall_time_s", "history")}
        summary["float_test_accuracy"] = pretrained["test_accuracy"]
        summary["wall_time_s"] = time.perf_counter() - start
    if config.json_path:
        with open(config.json_path, "w", encoding="utf-8") as file:
            json.dump(summary, file, indent=2)
            file.write("\n")
    return summary


def _run(config: TrainConfig, on_epoch_end: Callable[[int, dict[str, Any]], None] | None,
         comm: distributed.Communicator | None, float_model: nn.Module | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """One phase of `train`: (the trained model, the summary). With `comm`, this rank's part of a
    data-parallel run: rank 0's initial weights, a shard of each batch, gradients averaged over the ranks."""
    start = time.perf_counter()
    try:
        device = backend.parse_device(config.device)
        if comm is not None and device != "cpu":  # each rank its own GPU, by its rank on this machine
            device = f"cuda:{comm.local_rank % backend.cuda_device_count()}"
    except backend.DeviceError as error:
        raise ConfigError(str(error)) from None
    train_set, test_set = _datasets_on(device, *_datasets(config))
    options = _model_options(test_set)
    writes = comm is None or comm.rank == 0  # checkpoints and integer models: rank 0's alone
    shard = None if comm is None else (comm.rank, comm.size)

    backend.manual_seed(config.seed)
    model = _model(config, options, float_model).to(device)
    optimizer = _optimizer(config, model)
    scheduler = _scheduler(config, optimizer)
    if comm is not None:
        distributed.broadcast_parameters(model, comm)
        if config.sync_batchnorm:
            distributed.sync_batchnorm(model)
        optimizer = distributed.DistributedOptimizer(optimizer, comm)
    train_loader = data.DataLoader(train_set, batch_size=config.batch_size, shuffle=True, seed=config.seed, device=device,
                                   shard=shard)
    test_loader = data.DataLoader(test_set, batch_size=config.eval_batch_size, device=device, shard=shard)
    history: list[dict[str, Any]] = []
    first_epoch = 1
    if config.resume:
        done, history = _resume(config, model, optimizer, scheduler, train_loader, device)
        first_epoch = done + 1
        _say(config, f"resumed from {config.resume} after epoch {done}")
    parameters = sum(p.numel() for p in model.parameters())
    quantized = f" quantized W{config.wbits}A{config.abits} with {config.quant}" if config.quant else ""
    if config.quant and config.first_last_bits != "same":
        quantized += f" (first and last layers {config.first_last_bits}-bit)"
    if config.warm_start and not config.resume:
        quantized += f", starting from {config.init_from or 'the float model of phase 1'}"
    _say(config, f"training {config.model}{quantized} ({parameters:,} parameters) on {config.dataset} "
                 f"({len(train_set):,} train / {len(test_set):,} test images, {'x'.join(map(str, test_set.shape))}) "
                 f"on {device}: {config.optimizer} lr {config.lr:g} ({config.schedule}), batch {config.batch_size}, "
                 f"{_epochs(config.epochs)}, seed {config.seed}"
                 + (f"; the train loss includes label smoothing {config.label_smoothing:g}, the test loss does not"
                    if config.label_smoothing else ""))

    train_seconds = 0.0
    train_images = 0
    for epoch in range(first_epoch, config.epochs + 1):
        train_loader.set_epoch(epoch - 1)  # the order of epoch e depends on (seed, e) alone
        trained = train_one_epoch(model, optimizer, train_loader, f"epoch {epoch}/{config.epochs}",
                                  config.log_every, config.progress, config.label_smoothing)
        if scheduler is not None:
            scheduler.step()
        tested = evaluate(model, test_loader)
        train_seconds += trained["seconds"]
        train_images += int(trained["images"])
        record = {
            "epoch": epoch, "train_loss": trained["loss"], "train_accuracy": trained["accuracy"],
            "test_loss": tested["loss"], "test_accuracy": tested["accuracy"],
            "seconds": trained["seconds"], "images_per_s": trained["images_per_s"], "grad_norms": trained["grad_norms"],
        }
        if config.quant:
            record["quantizers"] = quant.quantizer_state(model)
        history.append(record)
        _say(config, f"epoch {epoch:>{len(str(config.epochs))}}/{config.epochs}  "
                     f"train loss {trained['loss']:.4f} acc {trained['accuracy']:6.2%}  "
                     f"test loss {tested['loss']:.4f} acc {tested['accuracy']:6.2%}  "
                     f"{trained['images_per_s']:,.0f} img/s  {trained['seconds']:.2f} s")
        if config.save and writes:
            checkpoint.save(
                config.save, model, optimizer, epoch=epoch,
                config={**config.run_settings(), "epochs": config.epochs, "data_dir": config.data_dir},
                rng=checkpoint.rng_states(["cpu", device]),
                loader=train_loader.state_dict(),
                model_info={"name": config.model, "class": type(model).__name__, "options": options},
                extra={"history": history, "scheduler": None if scheduler is None else scheduler.state_dict()},
            )
        if on_epoch_end is not None:
            on_epoch_end(epoch, record)

    wall = time.perf_counter() - start
    final = evaluate(model, test_loader) if not history or history[-1]["epoch"] != config.epochs else None
    last = history[-1] if history else {}
    summary = {
        "config": dataclasses.asdict(config),
        "device": device,
        "world_size": 1 if comm is None else comm.size,
        "averaging_s": optimizer.averaging_seconds if comm is not None else 0.0,  # of train_time_s, this rank's
        "parameters": parameters,
        "epochs_run": config.epochs - first_epoch + 1 if config.epochs >= first_epoch else 0,
        "test_accuracy": final["accuracy"] if final else last.get("test_accuracy"),
        "test_loss": final["loss"] if final else last.get("test_loss"),
        "test_images": len(test_set),
        "wall_time_s": wall,
        "train_time_s": train_seconds,
        "train_images_per_s": train_images / train_seconds if train_seconds > 0 else None,
        "history": history,
    }
    if config.init_from and not config.resume:
        float_history = checkpoint.read_metadata(config.init_from).get("extra", {}).get("history") or [{}]
        summary["float_test_accuracy"] = float_history[-1].get("test_accuracy")
    if config.convert:
        _convert(config, model, test_loader, summary, writes)
    _say(config, f"done: test accuracy {summary['test_accuracy']:.2%} on {len(test_set):,} test images after "
                 f"{_epochs(config.epochs)}; {wall:.1f} s in all, "
                 + (f"training at {summary['train_images_per_s']:,.0f} images/s" if summary["train_images_per_s"]
                    else "no epochs to train")
                 + (f"; checkpoint {config.save}" if config.save else ""))
    return model, summary

"""Programs the distributed tests run under mpiexec (``python program.py NAME ARGS...``), and in one
process for the reference:

- ``steps METHOD OUT [DEVICE]``: 5 SGD steps (2 for DSQ) of LeNet-5 in float64 on the digits, global batch 64, through the
  library's data-parallel API (a shard of each batch per rank, rank 0's weights broadcast, gradients
  averaged); METHOD is "float", a QAT method of quant.METHODS, or "batchnorm": a small CNN with
  BatchNorm synchronised over the ranks. Rank 0 (or the one process) writes the final state_dict to
  OUT (.npz).
- ``crash``: rank 1 raises after the first collective; the job must end, not hang.

The ranks and the one process sum the gradients in different orders, so their states differ by about
1e-16. A quantizer turns such a difference into a whole step where a value sits on a rounding tie,
and the digits' integer pixels put the inputs of a QAT net's first quantizer on ties: with them,
3 ranks of LSQ drifted 1e-5 to 2e-3 from one process within 5 steps for 4 of 8 seeds, with either
conv2d path. A jitter of under 0.01 per pixel takes the inputs off the ties (all 8 seeds then agree
to 3.4e-16). DSQ keeps a tie of its own: its min/max range puts the extreme weights on its clip edge, where
the gradient is cut, so 1e-16 decides whether they learn. With 2 ranks its runs drifted (up to 5.5e-4)
within 5 steps for 5 of 8 other seeds, and agreed to 1.9e-16 after 2 steps for all 8: DSQ runs
DSQ_STEPS steps.
"""

import sys

import numpy as np

import minigrad_q as mq
from minigrad_q import data, distributed, nn, optim, quant
from minigrad_q.models import build_model

STEPS, BATCH = 5, 64
DSQ_STEPS = 2  # see the module docstring


def steps(method, comm=None, count=None, device="cpu"):
    """The final state of `count` training steps (default STEPS, DSQ_STEPS for DSQ), on this rank's shards
    (comm) or on whole batches (None)."""
    if count is None:
        count = DSQ_STEPS if method == "dsq" else STEPS
    previous = mq.get_default_dtype()
    mq.set_default_dtype(mq.float64)
    try:
        return _steps(method, comm, count, device)
    finally:
        mq.set_default_dtype(previous)


def _steps(method, comm, count, device):
    mq.manual_seed(0)
    model = build_model("lenet5", in_channels=1, num_classes=10, input_size=8)
    if method == "batchnorm":
        model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(144, 10))
        if comm is not None:
            distributed.sync_batchnorm(model)
    elif method != "float":
        weight, act = quant.METHODS[method]
        model = quant.prepare_qat(model, weight=weight, act=act, wbits=4, abits=4)
    model = model.to(device)
    optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    digits = data.load_dataset("digits", split="train")
    jitter = np.random.default_rng(1).uniform(0.0, 0.01, digits.images.shape)  # no ties: see the module docstring
    images = mq.tensor(digits.images.astype(np.float64) + jitter, device=device)
    shard = None
    if comm is not None:
        distributed.broadcast_parameters(model, comm)
        optimizer = distributed.DistributedOptimizer(optimizer, comm)
        shard = (comm.rank, comm.size)
    loader = data.DataLoader(data.TensorDataset(images, mq.tensor(digits.labels, device=device)), batch_size=BATCH,
                             shuffle=True, seed=0, shard=shard, device=device)
    model.train()
    for _, (x, y) in zip(range(count), loader):
        loss = mq.cross_entropy(model(x), y, label_smoothing=0.2)
        optimizer.zero_grad()
        loss.backward()
        if comm is None:
            optimizer.step()
        else:
            optimizer.step(samples=len(y))
    return {name: tensor.numpy() for name, tensor in model.state_dict().items()}


def main(name, *args):
    comm = distributed.init()
    if name == "steps":
        method, out, *device = args
        state = steps(method, comm, device=device[0] if device else "cpu")
        if comm.rank == 0:
            np.savez(out, **state)
    elif name == "crash":
        comm.barrier()
        if comm.rank == 1:
            raise RuntimeError("this rank fails on purpose")
        comm.barrier()  # rank 0 waits here for ever unless the job is aborted


if __name__ == "__main__":
    main(*sys.argv[1:])

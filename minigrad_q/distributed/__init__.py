"""Data-parallel training over MPI: ``mpiexec -n N`` runs the same program on N ranks (SPMD), each trains on
its shard of every batch, and the gradients are averaged before each step (ChainerMN's model; NCCL
carries CuPy arrays between GPUs). Needs ``pip install -e '.[mpi]'``; nothing here imports mpi4py until
``init()`` is called.

    comm = distributed.init()                                   # under mpiexec
    distributed.broadcast_parameters(model, comm)               # rank 0's weights everywhere
    optimizer = distributed.DistributedOptimizer(optim.SGD(model.parameters(), lr=0.05), comm)
    loader = data.DataLoader(train_set, batch_size=64, shuffle=True, seed=0, shard=(comm.rank, comm.size))
    ...  loss.backward(); optimizer.step(samples=len(labels))

``minigrad-q train --distributed`` does all of this; see docs/distributed.md.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any

from ..core import collective
from .communicator import Communicator, DistributedError, under_launcher
from .data_parallel import BUCKET_BYTES, DistributedOptimizer, broadcast_parameters, sync_batchnorm

__all__ = ["init", "Communicator", "DistributedError", "DistributedOptimizer", "broadcast_parameters",
           "sync_batchnorm", "check_same_on_every_rank", "abort_on_error", "under_launcher", "BUCKET_BYTES"]

_world: Communicator | None = None


def init(data_parallel: bool = True) -> Communicator:
    """This process's communicator (made once); an uncaught exception on any rank aborts the whole job
    (``abort_on_error``). With `data_parallel` (the ranks train one model on shards of each batch), the
    reductions of ``core.collective`` go through it; without (each rank runs work of its own, as a
    distributed sweep does), state computed from data stays each rank's own. Refuses to start outside
    mpiexec or without mpi4py."""
    global _world
    if _world is None:
        if not under_launcher():
            raise DistributedError("distributed mode runs under an MPI launcher: mpiexec -n N minigrad-q train "
                                   "--distributed ... (this process was not started by mpiexec)")
        _world = Communicator()
        sys.excepthook = _aborting_hook(_world, sys.excepthook)
    collective.set_group(_world if data_parallel else None)
    return _world


def abort_on_error(comm: Communicator, error: BaseException, where: str = "", trace: str = "") -> None:
    """Say which rank failed and why (to stderr, first, with `trace` after it), then end every rank of the
    job: the others would otherwise wait for this one in their next collective, for ever. One write: the
    launcher may stop forwarding this rank's output as soon as the job is aborted."""
    what = f"{where}: " if where else ""
    sys.stderr.write(f"rank {comm.rank} of {comm.size} failed: {what}{type(error).__name__}: {error}\n{trace}")
    sys.stderr.flush()
    comm.abort(1)


def _aborting_hook(comm: Communicator, previous: Any) -> Any:
    def hook(kind: type[BaseException], error: BaseException, trace: Any) -> None:
        abort_on_error(comm, error, trace="".join(traceback.format_exception(kind, error, trace)))
        previous(kind, error, trace)

    return hook


def check_same_on_every_rank(comm: Communicator, what: str, settings: dict[str, Any]) -> None:
    """Refuse to start when some rank's `settings` differ from rank 0's (every rank calls it together):
    the error names the ranks and the settings that differ."""
    everyone = comm.allgather_object(settings)
    differing = {rank: sorted(key for key in settings if other.get(key) != everyone[0].get(key))
                 for rank, other in enumerate(everyone) if other != everyone[0]}
    if differing:
        listed = "; ".join(f"rank {rank}: {', '.join(keys)}" for rank, keys in differing.items())
        raise DistributedError(f"the ranks disagree on the {what} (they must all run the same command): "
                               f"differing from rank 0's, {listed}")

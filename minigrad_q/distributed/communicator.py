"""The processes of an `mpiexec` job and the collectives data-parallel training needs (ChainerMN's model:
MPI runs the same program on every rank; NCCL carries CuPy arrays between GPUs).

``Communicator`` wraps ``MPI.COMM_WORLD`` (mpi4py, imported only here and only when a communicator is
made). NumPy arrays go through MPI. CuPy arrays go through NCCL (``cupy.cuda.nccl``, its unique id sent
over MPI) when each rank has a GPU of its own; ranks that share a GPU (NCCL refuses two ranks on one
device) stage them through host memory and MPI instead.

Every rank must end with the same result bit for bit, or the replicas drift apart: sums over two
ranks (a + b = b + a exactly), minima and maxima are all-reduced; sums over more ranks are reduced
on rank 0 in one order and broadcast, since an MPI all-reduce may associate them differently on
different ranks. NCCL's ring all-reduce gives every rank the same values.
"""

from __future__ import annotations

import fcntl
import os
import stat
import sys
import termios
import time
from typing import Any

from .. import backend

# environment variables that MPI launchers set in each process they start (MPICH/hydra, Open MPI, PMIx, Slurm)
LAUNCHER_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "SLURM_NTASKS", "MPI_LOCALNRANKS")
LOCAL_RANK_VARIABLES = ("MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID")


class DistributedError(RuntimeError):
    """Distributed mode cannot start: no MPI, not under mpiexec, or ranks that disagree."""


def under_launcher() -> bool:
    """Whether this process was started by mpiexec (or srun)."""
    return any(name in os.environ for name in LAUNCHER_VARIABLES)


def _mpi() -> Any:
    try:
        from mpi4py import MPI
    except ImportError:
        raise DistributedError(
            "distributed mode needs mpi4py and an MPI library: pip install -e '.[mpi]' (mpi4py and MPICH from wheels)"
        ) from None
    return MPI


class Communicator:
    """``Communicator()``: this process's rank among ``size`` processes, and ``local_rank`` on its machine.

    Collectives (every rank must call them, in the same order):
    ``allreduce(array, op)`` a new array ("sum", "min", "max"); ``allreduce_(array)`` a sum in place;
    ``bcast_(array)`` rank 0's values in place; ``allreduce_count(n)``; ``bcast_object``,
    ``gather_object`` (to rank 0), ``allgather_object``; ``barrier()``. ``abort(code)`` ends every rank.
    """

    def __init__(self) -> None:
        MPI = _mpi()
        self._MPI = MPI
        self.comm = MPI.COMM_WORLD
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self.local_rank = _local_rank(self.comm)
        self._ops = {"sum": MPI.SUM, "min": MPI.MIN, "max": MPI.MAX}
        self._nccl: dict[str, Any] = {}  # device -> NCCL communicator, or None where ranks share the GPU

    def __repr__(self) -> str:
        return f"Communicator(rank {self.rank} of {self.size}, local rank {self.local_rank})"

    # ------------------------------------------------------------ arrays
    def allreduce(self, array: Any, op: str) -> Any:
        """A new array: `array` reduced elementwise over the ranks with `op` ("sum", "min" or "max")."""
        xp = backend.get_array_module(array)
        result = xp.array(array, copy=True)
        self._reduce_in_place(result, op)
        return result

    def allreduce_(self, array: Any) -> Any:
        """`array` (C-contiguous) replaced, in place, by its sum over the ranks."""
        self._reduce_in_place(array, "sum")
        return array

    def bcast_(self, array: Any) -> Any:
        """`array` (C-contiguous) overwritten with rank 0's."""
        device = backend.device_of(array)
        if device != "cpu":
            nccl = self._nccl_for(device)
            if nccl is not None:
                nccl.bcast(array.data.ptr, array.size, _nccl_type(array), 0, backend.current_stream(device))
                return array
            host = backend.asnumpy(array)
            self.comm.Bcast(host, root=0)
            array[...] = backend.asarray(host, device=device)
            return array
        self.comm.Bcast(array, root=0)
        return array

    def _reduce_in_place(self, array: Any, op: str) -> None:
        device = backend.device_of(array)
        if device != "cpu":
            nccl = self._nccl_for(device)
            if nccl is not None:
                module = backend.nccl()
                ops = {"sum": module.NCCL_SUM, "min": module.NCCL_MIN, "max": module.NCCL_MAX}
                nccl.allReduce(array.data.ptr, array.data.ptr, array.size, _nccl_type(array), ops[op],
                               backend.current_stream(device))
                return
            host = backend.asnumpy(array).copy()
            self._reduce_host(host, op)
            array[...] = backend.asarray(host, device=device)
            return
        self._reduce_host(array, op)

    def _reduce_host(self, array: Any, op: str) -> None:
        MPI = self._MPI
        if op != "sum" or self.size <= 2:
            self.comm.Allreduce(MPI.IN_PLACE, array, op=self._ops[op])
            return
        if self.rank == 0:  # one order of summation, then every rank gets rank 0's result
            self.comm.Reduce(MPI.IN_PLACE, array, op=MPI.SUM, root=0)
        else:
            self.comm.Reduce(array, None, op=MPI.SUM, root=0)
        self.comm.Bcast(array, root=0)

    def _nccl_for(self, device: str) -> Any:
        """The NCCL communicator of `device`, made on first use (a collective: every rank comes here
        together); None when two ranks share a GPU or CuPy has no NCCL."""
        if device not in self._nccl:
            places = self.comm.allgather((self._MPI.Get_processor_name(), device))
            nccl = backend.nccl()
            communicator = None
            if nccl is not None and len(set(places)) == self.size:
                uid = self.comm.bcast(nccl.get_unique_id() if self.rank == 0 else None, root=0)
                communicator = nccl.NcclCommunicator(self.size, uid, self.rank)
            self._nccl[device] = communicator
        return self._nccl[device]

    # ------------------------------------------------------------ Python values
    def allreduce_count(self, count: int) -> int:
        return int(self.comm.allreduce(int(count), op=self._MPI.SUM))

    def bcast_object(self, value: Any) -> Any:
        return self.comm.bcast(value, root=0)

    def gather_object(self, value: Any) -> list[Any] | None:
        """Every rank's `value`, in rank order, on rank 0 (None elsewhere)."""
        return self.comm.gather(value, root=0)

    def allgather_object(self, value: Any) -> list[Any]:
        return self.comm.allgather(value)

    def barrier(self) -> None:
        self.comm.Barrier()

    def abort(self, code: int = 1) -> None:
        """End every rank of the job now (what an exception on one rank must do, or the others hang)."""
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
            _wait_until_read(stream.fileno())
        self.comm.Abort(code)
        os._exit(code)  # MPI_Abort can return before the launcher ends this process: no traceback after it


def _wait_until_read(fd: int, seconds: float = 1.0) -> None:
    """Wait (at most `seconds`) until the reader of pipe `fd` has taken what was written to it: a launcher
    that aborts the job drops what its processes' pipes still hold (MPICH's hydra, 1 crash in 30 here)."""
    if not stat.S_ISFIFO(os.fstat(fd).st_mode):
        return
    unread = bytearray(4)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        fcntl.ioctl(fd, termios.FIONREAD, unread)
        if not int.from_bytes(unread, sys.byteorder):
            return
        time.sleep(0.001)


def _local_rank(comm: Any) -> int:
    for name in LOCAL_RANK_VARIABLES:
        if name in os.environ:
            return int(os.environ[name])
    return comm.Split_type(_mpi().COMM_TYPE_SHARED).Get_rank()


def _nccl_type(array: Any) -> Any:
    nccl = backend.nccl()
    types = {"float32": nccl.NCCL_FLOAT32, "float64": nccl.NCCL_FLOAT64, "int64": nccl.NCCL_INT64,
             "int32": nccl.NCCL_INT32, "float16": nccl.NCCL_FLOAT16, "uint8": nccl.NCCL_UINT8}
    return types[array.dtype.name]

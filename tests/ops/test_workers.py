"""The worker-thread helpers shared by conv2d, max_pool2d and the quantizers: equal chunks, fixed
assignment of chunks to workers, results in worker order, BLAS on one thread meanwhile."""

import threading
import time

import pytest

from minigrad_q.ops import workers


@pytest.mark.parametrize("n, most, threads", [(128, 34, 2), (64, 1, 2), (5, 2, 3), (7, 100, 2), (1, 1, 4), (10, 3, 1)])
def test_equal_chunks_cover_the_items_once_in_equal_parts_as_many_per_worker(n, most, threads):
    chunks, worker_count = workers.equal_chunks(n, most, threads)
    assert [i for start, stop in chunks for i in range(start, stop)] == list(range(n))
    sizes = [stop - start for start, stop in chunks]
    assert max(sizes) - min(sizes) <= 1
    assert 1 <= worker_count <= threads
    assert len(chunks) % worker_count == 0 or len(chunks) == n  # equal shares, unless there are too few items
    assert max(sizes) <= max(most, -(-n // len(chunks)))
    if worker_count == 1:
        assert max(sizes) <= most or len(chunks) == n


def test_equal_chunks_of_nothing_and_of_what_fits_one_chunk():
    assert workers.equal_chunks(0, 8, 2) == ([], 1)
    assert workers.equal_chunks(6, 100, 2) == ([(0, 6)], 1)  # one chunk's work stays on one thread
    assert workers.equal_chunks(6, 5, 2) == ([(0, 3), (3, 6)], 2)  # two chunks: one for each worker


def test_run_in_workers_gives_each_worker_every_t_th_chunk_and_returns_in_worker_order():
    seen = {}

    def work(indices):
        seen[tuple(indices)] = threading.get_ident()
        return sum(indices)

    assert workers.run_in_workers(work, 7, 3) == [0 + 3 + 6, 1 + 4, 2 + 5]
    assert set(seen) == {(0, 3, 6), (1, 4), (2, 5)}
    assert seen[(0, 3, 6)] == threading.get_ident()  # worker 0 is the calling thread
    assert seen[(1, 4)] != threading.get_ident() and seen[(2, 5)] != threading.get_ident()


def _blas_setting():
    """What the BLAS itself says it uses now (blas_threads() reports the count from before a hold)."""
    return max(c.get_num_threads() for c in workers.blas_controllers())


def _needs_blas_threads():
    if workers.blas_threads() < 2:
        pytest.skip("the BLAS runs on one thread already (or threadpoolctl cannot tell)")


def test_blas_runs_on_one_thread_inside_the_workers_and_is_restored_after():
    _needs_blas_threads()
    before = workers.blas_threads()
    inside = workers.run_in_workers(lambda indices: (_blas_setting(), workers.blas_threads()), 2, 1)
    assert inside == [(1, before)]  # held at 1; plans made meanwhile still see the count from before
    assert workers.blas_threads() == _blas_setting() == before


@pytest.mark.parametrize("worker_count", [1, 2])
def test_a_thread_other_than_the_main_one_gets_the_blas_back_as_it_was(worker_count):
    _needs_blas_threads()
    seen = []

    def body():
        inside = workers.run_in_workers(lambda indices: _blas_setting(), worker_count, worker_count)
        seen.append((inside, workers.blas_threads(), _blas_setting()))

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    before = workers.blas_threads()
    assert seen == [([1] * worker_count, before, before)]


def test_blas_work_open_in_two_threads_at_once_is_planned_and_restored_as_one_alone():
    """Two threads training at once: the first to close once set the BLAS back to its count while the
    other still ran (and the other then restored the 1 it had seen), and conv2d plans made in one
    thread while the other held BLAS at 1 chunked the batch for one worker: results then differed
    from a run alone."""
    _needs_blas_threads()
    before = workers.blas_threads()
    first_open, second_done = threading.Event(), threading.Event()
    seen = {}

    def first(indices):
        first_open.set()
        second_done.wait(5)
        seen["first, after the second closed"] = (_blas_setting(), workers.blas_threads())

    def second():
        first_open.wait(5)
        seen["second, planning"] = workers.blas_threads()
        workers.run_in_workers(lambda indices: None, 1, 1)
        second_done.set()

    thread = threading.Thread(target=second)
    thread.start()
    workers.run_in_workers(first, 1, 1)
    thread.join()
    assert seen == {"second, planning": before, "first, after the second closed": (1, before)}
    assert workers.blas_threads() == _blas_setting() == before


def test_work_without_blas_leaves_the_blas_threads_alone():
    before = workers.blas_threads()
    assert workers.run_in_workers(lambda indices: workers.blas_threads(), 3, 2, blas=False) == [before, before]
    assert workers.run_in_workers(lambda indices: indices, 3, 1, blas=False) == [[0, 1, 2]]


def test_workers_run_in_the_callers_context_so_numpy_errstate_holds_there():
    import numpy as np

    if int(np.__version__.split(".")[0]) < 2:
        pytest.skip("NumPy keeps errstate in a context variable from 2.0 on (thread-local before)")
    with np.errstate(over="ignore", invalid="raise"):
        seen = workers.run_in_workers(lambda indices: (np.geterr()["over"], np.geterr()["invalid"]), 4, 2)
    assert seen == [("ignore", "raise")] * 2


def test_when_the_calling_threads_work_fails_the_others_finish_inside_the_blas_hold_first():
    _needs_blas_threads()
    seen = []

    def work(indices):
        if indices == [0]:
            raise RuntimeError("worker 0 failed")
        time.sleep(0.05)
        seen.append(_blas_setting())

    with pytest.raises(RuntimeError, match="worker 0 failed"):
        workers.run_in_workers(work, 2, 2)
    assert seen == [1]  # worker 1 finished before run_in_workers returned, BLAS still on one thread
    assert _blas_setting() == workers.blas_threads()

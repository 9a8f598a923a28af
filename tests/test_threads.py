"""The process-wide worker team of :mod:`varseg._threads` (used by the solvers' kernels)."""

import multiprocessing
import threading
import time

import pytest

from varseg._threads import Team, chunks, team


def _record(out, i, delay=0.0):
    def call():
        time.sleep(delay)
        out[i] = threading.get_ident()

    return call


def test_run_uses_the_caller_and_one_distinct_worker_per_call():
    t = Team(3)
    for n in (1, 2, 3, 4):  # repeated runs reuse the same threads
        out = {}
        t.run([_record(out, i, 0.01) for i in range(n)])
        assert sorted(out) == list(range(n))
        assert out[0] == threading.get_ident()
        assert len(set(out.values())) == n


def test_calls_run_concurrently():
    t = Team(1)
    barrier = threading.Barrier(2, timeout=10)  # only passes if both calls run at once
    hits = []
    t.run([lambda: hits.append(barrier.wait()), lambda: hits.append(barrier.wait())])
    assert sorted(hits) == [0, 1]


def test_more_calls_than_workers_run_serially_in_the_caller():
    t = Team(1)
    out = {}
    t.run([_record(out, i) for i in range(3)])
    assert set(out.values()) == {threading.get_ident()}


def test_a_worker_error_is_raised_after_all_calls_finish():
    t = Team(2)
    done = []

    def fail():
        raise KeyError("worker failed")

    def slow():
        time.sleep(0.05)
        done.append("slow")

    with pytest.raises(KeyError, match="worker failed"):
        t.run([lambda: done.append("main"), fail, slow])
    assert sorted(done) == ["main", "slow"]
    out = {}
    t.run([_record(out, i) for i in range(3)])  # the team still works afterwards
    assert len(set(out.values())) == 3


def test_the_callers_error_waits_for_the_workers():
    t = Team(1)
    done = []

    def slow():
        time.sleep(0.05)
        done.append("worker")

    def fail():
        raise ValueError("caller failed")

    with pytest.raises(ValueError, match="caller failed"):
        t.run([fail, slow])
    assert done == ["worker"]


def test_a_nested_run_on_the_busy_team_runs_serially():
    t = Team(1)
    out = {}

    def outer():
        t.run([_record(out, "a"), _record(out, "b")])  # team busy: both here

    t.run([outer, lambda: None])
    assert out["a"] == out["b"] == threading.get_ident()


def test_two_python_threads_share_the_team():
    t = Team(1)
    results = []

    def solve(k):
        acc = [0, 0]

        def part(j):
            def call():
                for v in range(j, 10_000, 2):
                    acc[j] += v * k

            return call

        for _ in range(20):
            acc[:] = [0, 0]
            t.run([part(0), part(1)])
            results.append((k, sum(acc)))

    threads = [threading.Thread(target=solve, args=(k,)) for k in (1, 3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert sorted(set(results)) == [(1, 49_995_000), (3, 3 * 49_995_000)]
    assert len(results) == 40


def test_team_is_shared_and_grows():
    a = team(1)
    assert team(1) is a
    b = team(a.workers + 1)
    assert b.workers == a.workers + 1
    assert team(1) is b


def _child(q):
    out = {}
    team(1).run([_record(out, 0), _record(out, 1)])
    q.put(len(set(out.values())))


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork")
def test_a_forked_child_gets_a_working_team():
    team(1).run([lambda: None, lambda: None])  # the parent's team has running threads
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(q,))
    p.start()
    p.join(timeout=60)
    alive = p.is_alive()
    if alive:
        p.kill()
    assert not alive and p.exitcode == 0
    assert q.get(timeout=5) == 2


@pytest.mark.parametrize("n,threads,per", [(64, 2, 2), (7, 3, 4), (5, 1, 4), (3, 4, 2), (1, 2, 2)])
def test_chunks_cover_the_range_in_order(n, threads, per):
    c = chunks(n, threads, per)
    assert len(c) == (min(n, per * threads) if threads > 1 else 1)
    assert c[0][0] == 0 and c[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(c[:-1], c[1:], strict=True))
    sizes = [b - a for a, b in c]
    assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1


def test_drain_runs_every_chunk_once_with_each_threads_own_worker():
    t = Team(2)
    seen = []
    lock = threading.Lock()

    def worker(tag):
        def work(b0, b1):
            time.sleep(0.002 * (tag + 1))  # uneven speeds: the faster threads take more
            with lock:
                seen.append((b0, b1, tag, threading.get_ident()))

        return work

    c = chunks(30, 3, 4)
    t.drain(c, [worker(k) for k in range(3)])
    assert sorted((a, b) for a, b, _, _ in seen) == c
    # a tag always runs on one thread, and each thread runs one tag
    by_tag = {}
    for _, _, tag, ident in seen:
        by_tag.setdefault(tag, set()).add(ident)
    assert all(len(v) == 1 for v in by_tag.values())
    assert len({next(iter(v)) for v in by_tag.values()}) == len(by_tag)
    assert len(by_tag[0]) == 1 and threading.get_ident() in by_tag[0]


def test_drain_on_a_busy_team_runs_every_chunk_here():
    t = Team(1)
    seen = []

    def inner():
        t.drain(chunks(10, 2, 2), [lambda a, b: seen.append((a, b))] * 2)

    t.run([inner, lambda: None])
    assert sorted(seen) == chunks(10, 2, 2)

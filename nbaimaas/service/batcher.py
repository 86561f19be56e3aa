"""Micro-batching for prediction: many small requests, one batched forward pass.

One ``MicroBatcher`` per exact model version (``name:3``), so registering a new version never
touches requests queued for the old one. It never waits on a clock for company. Its task takes
whatever is queued (up to ``max_batch``) and runs it; the requests that arrive during that
forward pass form the next batch. It waits (at most ``max_wait``) only while requests are known
to be on their way: announced by ``expect()`` (the route does, while it reads the body) and not
yet submitted. So at low load a request runs at once.

Where a batch runs depends on what passes of its size have cost on this model. A pass that has
been fast (under ``inline_s``, 10 ms, of CPU time, per power-of-two bucket of rows) runs on the
event loop itself, after one turn of the loop to let requests already received join it: on a
small model two thread hand-offs, and the GIL ping-pong between the loop and an inference
thread, cost more than the pass (LeNet at concurrency 16 on 2 cores, the two side by side:
1.9k requests/s on the thread, 3.1-4.0k on the loop; passes there even took less CPU). A slow or
never-timed size runs on the app's one inference thread, so the loop keeps answering meanwhile
and long passes, which release the GIL, overlap the loop's work.

The queue is bounded: when full, the request is refused at once with ServiceUnavailable
(503 + Retry-After) instead of waiting without end.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from ..errors import ServiceUnavailable

__all__ = ["MicroBatcher", "Batchers"]


class MicroBatcher:
    def __init__(self, run_batch: Callable[[list], list], *, name: str = "", max_batch: int = 64,
                 max_wait: float = 0.002, max_queue: int = 256, retry_after: int = 1,
                 inline_s: float = 0.010, executor: Callable[[], ThreadPoolExecutor] | None = None):
        self.run_batch = run_batch          # items -> one result or exception per item
        self.name = name
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.retry_after = retry_after
        self.inline_s = inline_s            # run a batch on the loop if passes of its size take less
        self._executor = executor           # the app's inference thread (None: asyncio's pool)
        self._queue: asyncio.Queue = asyncio.Queue(max_queue)
        self._task: asyncio.Task | None = None
        self._arrived: asyncio.Event | None = None
        self.loop = asyncio.get_running_loop()
        self.expected = 0                   # requests announced by expect(), not yet submitted
        self.cost_s: dict[int, float] = {}  # rows bucket -> recent seconds per pass (moving average)
        self._strikes: dict[int, int] = {}  # bucket -> slow passes on the loop in a row
        # Counters of what the batcher did and decided (for tests and GET /v1/stats).
        self.batches = 0                    # forward passes run
        self.served = 0                     # requests answered by them
        self.inline = 0                     # forward passes run on the event loop
        self.waits = 0                      # times a batch waited for announced requests
        self.largest = 0                    # the largest batch so far

    @contextmanager
    def expect(self):
        """Announce a request that will be submitted soon (while its body is read); submit it
        with the slot this yields, so it counts as announced until it is in the queue."""
        self.expected += 1
        slot = _Slot(self)
        try:
            yield slot
        finally:
            slot.close()

    def _wake(self) -> None:
        if self._arrived is not None:
            self._arrived.set()

    async def submit(self, item: Any) -> Any:
        future = self.loop.create_future()
        try:
            self._queue.put_nowait((item, future))
        except asyncio.QueueFull:
            err = ServiceUnavailable(f"{self.name or 'the model'} is overloaded: "
                                     f"{self._queue.maxsize} requests are already queued",
                                     f"retry after {self.retry_after} s")
            err.retry_after = self.retry_after
            raise err from None
        self._wake()
        if self._task is None or self._task.done():
            self._task = self.loop.create_task(self._loop(), name=f"batcher-{self.name}")
        return await future

    def stats(self) -> dict:
        """What the batcher did and decided so far (``GET /v1/stats``)."""
        return {"batches": self.batches, "served": self.served, "inline": self.inline,
                "waits": self.waits, "largest": self.largest, "queued": self._queue.qsize(),
                # per bucket of rows ("1", "2-3", "4-7", ...): recent ms per pass
                "ms_per_pass": {_rows_label(k): round(v * 1e3, 3) for k, v in sorted(self.cost_s.items())},
                "on_thread_for_good": sorted(_rows_label(k) for k, n in self._strikes.items() if n >= _STRIKES)}

    @property
    def idle(self) -> bool:
        return self._queue.empty() and (self._task is None or self._task.done())

    def _fast(self, batch: list) -> bool:
        """Nobody announced, and passes of this many rows have been fast on this model."""
        if self.expected:
            return False
        key = _bucket([item for item, _ in batch])
        cost = self.cost_s.get(key)
        return cost is not None and cost < self.inline_s and self._strikes.get(key, 0) < _STRIKES

    def _timed(self, items: list, inline: bool) -> list:
        # On the thread, its own CPU time: waiting for the GIL the loop holds is no cost of the
        # pass. On the loop, the wall time, which is what the loop was blocked for; a size that
        # blocked it too long several passes in a row (a GPU pass that sleeps in a sync, say, not
        # one pass the OS preempted) never runs there again.
        clock = time.perf_counter if inline else time.thread_time
        t = clock()
        results = self.run_batch(items)
        took = clock() - t
        key = _bucket(items)
        last = self.cost_s.get(key)
        self.cost_s[key] = took if last is None else 0.8 * last + 0.2 * took
        if inline:
            self._strikes[key] = self._strikes.get(key, 0) + 1 if took >= self.inline_s else 0
        return results

    def _count(self, n: int) -> None:
        self.batches += 1
        self.served += n
        self.largest = max(self.largest, n)

    async def _loop(self) -> None:
        # Ends when the queue is empty; submit() starts a new task (no await between the check
        # and the return, so no request can slip in unseen).
        while not self._queue.empty():
            batch = [self._queue.get_nowait()]
            await self._grow(batch)
            inline = False
            if self._fast(batch):
                # One turn of the loop lets requests already received reach the queue; then
                # decide again, since the batch may have grown into a size not known to be fast.
                await asyncio.sleep(0)
                await self._grow(batch)
                inline = self._fast(batch)
            live = [(item, fut) for item, fut in batch if not fut.cancelled()]
            if not live:
                continue
            items = [item for item, _ in live]
            try:
                if inline:
                    results = self._timed(items, True)
                    self.inline += 1
                else:
                    executor = self._executor() if self._executor is not None else None
                    results = await self.loop.run_in_executor(executor, self._timed, items, False)
            except BaseException as exc:  # noqa: BLE001 - fail this batch, keep serving
                if isinstance(exc, asyncio.CancelledError):
                    raise
                results = [exc] * len(live)
            self._count(len(live))
            for (_, fut), res in zip(live, results):
                if not fut.done():
                    fut.set_exception(res) if isinstance(res, BaseException) else fut.set_result(res)

    async def _grow(self, batch: list) -> None:
        """Take what is queued; wait (at most max_wait) only for requests announced by expect()."""
        deadline = None
        while len(batch) < self.max_batch:
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            if len(batch) >= self.max_batch or self.expected == 0 or self.max_wait <= 0:
                return
            if deadline is None:
                deadline = self.loop.time() + self.max_wait
                self.waits += 1
            remaining = deadline - self.loop.time()
            if remaining <= 0:
                return
            if self._arrived is None:
                self._arrived = asyncio.Event()
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()


_STRIKES = 3        # slow passes on the loop in a row before a size goes to the thread for good


def _bucket(items: list) -> int:
    """Passes are timed per power-of-two bucket of rows: 1, 2-3, 4-7, ... (an item without
    ``rows`` counts one)."""
    return sum(getattr(item, "rows", 1) for item in items).bit_length()


def _rows_label(bucket: int) -> str:
    low, high = 1 << (bucket - 1), (1 << bucket) - 1
    return str(low) if low == high else f"{low}-{high}"


class _Slot:
    """One announced request: leaves the announced count the moment it is queued (or given up)."""

    def __init__(self, batcher: MicroBatcher):
        self.batcher = batcher
        self.open = True

    def close(self) -> None:
        if self.open:
            self.open = False
            self.batcher.expected -= 1
            self.batcher._wake()

    async def submit(self, item: Any) -> Any:
        self.close()     # no await until submit() has queued it: the batcher cannot miss it
        return await self.batcher.submit(item)


class Batchers:
    """The batchers of one app, created on first use per model version, sharing one inference
    thread (forward passes of several models one after another, never competing for the cores)."""

    def __init__(self, run_batch: Callable[[str, list], list], **options):
        self.run_batch = run_batch          # (exact ref, items) -> results; a seam for tests
        self.options = options
        self._by_ref: dict[str, MicroBatcher] = {}
        self._pool: ThreadPoolExecutor | None = None

    def executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="nbaimaas-predict")
        return self._pool

    def get(self, ref: str) -> MicroBatcher:
        batcher = self._by_ref.get(ref)
        if batcher is None or batcher.loop is not asyncio.get_running_loop():
            self._forget_idle()
            # Looks self.run_batch up on every batch, so tests may swap it after start.
            batcher = MicroBatcher(lambda items: self.run_batch(ref, items), name=ref,
                                   executor=self.executor, **self.options)
            self._by_ref[ref] = batcher
        return batcher

    def _forget_idle(self, keep: int = 32) -> None:
        # Versions nobody asks for any more should not keep a task each forever.
        if len(self._by_ref) >= keep:
            for ref in [r for r, b in self._by_ref.items() if b.idle]:
                del self._by_ref[ref]

    def stats(self) -> dict:
        return {ref: batcher.stats() for ref, batcher in self._by_ref.items()}

    def __getitem__(self, ref: str) -> MicroBatcher:
        return self._by_ref[ref]

    async def submit(self, ref: str, item: Any) -> Any:
        return await self.get(ref).submit(item)

    async def close(self) -> None:
        for batcher in self._by_ref.values():
            await batcher.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)

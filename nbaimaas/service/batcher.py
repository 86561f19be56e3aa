"""Micro-batching for prediction: many small requests, one batched forward pass.

One ``MicroBatcher`` per exact model version (``name:3``), so registering a new version never
touches requests queued for the old one. Its task takes whatever is queued (up to
``max_batch``); it waits (at most ``max_wait``) only while the batch is still growing, so at low
load a request runs at once, and under load the requests that arrive during one forward pass
form the next batch. The queue is bounded: when full, the request is refused at once with
ServiceUnavailable (503 + Retry-After) instead of waiting without end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ..errors import ServiceUnavailable

__all__ = ["MicroBatcher", "Batchers"]


class MicroBatcher:
    def __init__(self, run_batch: Callable[[list], list], *, name: str = "", max_batch: int = 64,
                 max_wait: float = 0.002, max_queue: int = 256, retry_after: int = 1):
        self.run_batch = run_batch          # items -> one result or exception per item (in a thread)
        self.name = name
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.retry_after = retry_after
        self._queue: asyncio.Queue = asyncio.Queue(max_queue)
        self._task: asyncio.Task | None = None
        self.loop = asyncio.get_running_loop()
        self.batches = 0                    # forward passes run (for tests and /stats)
        self.served = 0

    async def submit(self, item: Any) -> Any:
        future = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait((item, future))
        except asyncio.QueueFull:
            err = ServiceUnavailable(f"{self.name or 'the model'} is overloaded: "
                                     f"{self._queue.maxsize} requests are already queued",
                                     f"retry after {self.retry_after} s")
            err.retry_after = self.retry_after
            raise err from None
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name=f"batcher-{self.name}")
        return await future

    @property
    def idle(self) -> bool:
        return self._queue.empty() and (self._task is None or self._task.done())

    async def _loop(self) -> None:
        # Ends when the queue is empty; submit() starts a new task (no await between the check
        # and the return, so no request can slip in unseen).
        while not self._queue.empty():
            batch = [self._queue.get_nowait()]
            await self._grow(batch)
            live = [(item, fut) for item, fut in batch if not fut.cancelled()]
            if not live:
                continue
            try:
                results = await asyncio.to_thread(self.run_batch, [item for item, _ in live])
            except BaseException as exc:  # noqa: BLE001 - fail this batch, keep serving
                if isinstance(exc, asyncio.CancelledError):
                    raise
                results = [exc] * len(live)
            self.batches += 1
            self.served += len(live)
            for (_, fut), res in zip(live, results):
                if not fut.done():
                    fut.set_exception(res) if isinstance(res, BaseException) else fut.set_result(res)

    async def _grow(self, batch: list) -> None:
        """Take what is queued; wait a little for more only while more keeps arriving."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        while len(batch) < self.max_batch:
            grew = False
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
                grew = True
            remaining = deadline - loop.time()
            if not grew or remaining <= 0 or len(batch) >= self.max_batch:
                return
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except asyncio.TimeoutError:
                return

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()


class Batchers:
    """The batchers of one app, created on first use per model version."""

    def __init__(self, run_batch: Callable[[str, list], list], **options):
        self.run_batch = run_batch          # (exact ref, items) -> results; a seam for tests
        self.options = options
        self._by_ref: dict[str, MicroBatcher] = {}

    def get(self, ref: str) -> MicroBatcher:
        batcher = self._by_ref.get(ref)
        if batcher is None or batcher.loop is not asyncio.get_running_loop():
            self._forget_idle()
            batcher = MicroBatcher(lambda items: self.run_batch(ref, items), name=ref, **self.options)
            self._by_ref[ref] = batcher
        return batcher

    def _forget_idle(self, keep: int = 32) -> None:
        # Versions nobody asks for any more should not keep a task each forever.
        if len(self._by_ref) >= keep:
            for ref in [r for r, b in self._by_ref.items() if b.idle]:
                del self._by_ref[ref]

    def __getitem__(self, ref: str) -> MicroBatcher:
        return self._by_ref[ref]

    async def submit(self, ref: str, item: Any) -> Any:
        return await self.get(ref).submit(item)

    async def close(self) -> None:
        for batcher in self._by_ref.values():
            await batcher.close()

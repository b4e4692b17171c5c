"""Dynamic batching for the HTTP API: the questions of concurrent requests share forward passes.

Requests that arrive while the model is busy are queued and answered together in the next pass (up
to `max_batch` questions); the queue holds at most `max_queue` questions, past which a request is
refused with `Busy` and a fair Retry-After. A pass that fails is retried request by request, so only
the request that causes a failure receives it.
"""

from __future__ import annotations

import asyncio
import math
import time

from medtune.serve.answer import Answerer
from medtune.serve.limits import MAX_QUEUE_QUESTIONS
from medtune.serve.question import Question


class Busy(Exception):
    """The queue is full; `retry_after` seconds is a fair wait."""

    def __init__(self, waiting: int, limit: int, retry_after: int):
        super().__init__(f"busy: {waiting} questions are waiting (at most {limit}); retry in {retry_after} s")
        self.retry_after = retry_after


class Batcher:
    """Collects the questions of concurrent requests and answers them in shared forward passes; holds at
    most `max_queue` questions waiting (a request that would pass it is refused with Busy)."""

    def __init__(self, answerer: Answerer, max_batch: int = 32, max_wait_s: float = 0.005,
                 max_queue: int = MAX_QUEUE_QUESTIONS):
        self.answerer = answerer
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self.waiting = 0
        self.pass_s = 0.1  # the last forward pass's seconds, for Retry-After
        self.queue: asyncio.Queue | None = None
        self.stats = {"requests": 0, "questions": 0, "forward_batches": 0, "largest_batch": 0, "refused_busy": 0,
                      "largest_queue": 0}
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Run the batching task on the current event loop (again, if the app moved to another loop)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._task is None or self._task.done():
            self._loop, self.queue, self.waiting = loop, asyncio.Queue(), 0
            self._task = loop.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def submit(self, questions: list[Question]) -> list[dict]:
        self.start()
        if self.waiting and self.waiting + len(questions) > self.max_queue:
            self.stats["refused_busy"] += 1
            passes = math.ceil((self.waiting + len(questions)) / self.max_batch)
            raise Busy(self.waiting, self.max_queue, max(1, math.ceil(passes * self.pass_s)))
        self.waiting += len(questions)
        self.stats["largest_queue"] = max(self.stats["largest_queue"], self.waiting)
        fut = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((questions, fut))  # type: ignore[union-attr]
        return await fut

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        assert self.queue is not None
        while True:
            pending = [await self.queue.get()]
            n = len(pending[0][0])
            deadline = loop.time() + self.max_wait_s
            while n < self.max_batch:
                try:
                    nxt = self.queue.get_nowait()
                except asyncio.QueueEmpty:
                    left = deadline - loop.time()
                    if left <= 0:
                        break
                    try:
                        nxt = await asyncio.wait_for(self.queue.get(), left)
                    except (asyncio.TimeoutError, TimeoutError):
                        break
                pending.append(nxt)
                n += len(nxt[0])
            self.waiting -= n
            pending = [(qs, fut) for qs, fut in pending if not fut.done()]  # timed out meanwhile
            if pending:
                await self._answer(loop, pending)

    async def _answer(self, loop: asyncio.AbstractEventLoop, pending: list) -> None:
        """One forward pass for every pending request; when it fails, each request alone, so that only the
        request that causes a failure receives it."""
        flat = [q for qs, _ in pending for q in qs]
        t0 = time.perf_counter()
        try:
            results = await loop.run_in_executor(None, self.answerer.answer, flat)
        except Exception as err:  # noqa: BLE001 - handed to the waiting request(s)
            if len(pending) > 1:
                for one in pending:
                    await self._answer(loop, [one])
                return
            if not pending[0][1].done():
                pending[0][1].set_exception(err)
            return
        self.pass_s = time.perf_counter() - t0
        self.stats["forward_batches"] += 1
        self.stats["largest_batch"] = max(self.stats["largest_batch"], len(flat))
        start = 0
        for qs, fut in pending:
            if not fut.done():
                fut.set_result(results[start:start + len(qs)])
            start += len(qs)

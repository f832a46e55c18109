"""The model behind a queue: one batch at a time, concurrent text queries batched together.

Requests put their work on an asyncio queue; one worker takes what has piled up, embeds
all the waiting texts in one model call, runs other jobs (an uploaded video, a label
list) one by one, and answers each request's future. The model runs in one thread of
its own, so the event loop keeps serving pages, posters and videos meanwhile.
"""

import asyncio
import concurrent.futures
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAX_TEXT_BATCH = 32  # texts per model call
# Batches are padded up to one of these sizes: every new input shape is a compilation
# (seconds, on JAX and TensorFlow), so the shapes are few and compiled once, at start.
TEXT_BUCKETS = (1, 4, 16, 32)


@dataclass
class _Item:
    future: asyncio.Future
    text: str | None = None
    job: object = None  # a function of no arguments, for anything but a text
    args: tuple = field(default_factory=tuple)


class ModelQueue:
    """The model's one thread, and the queue of requests for it.

    Args:
        embed_texts: callable. A list of N texts → their (N, D) embeddings (called in
            the model thread).
        max_batch: int. The most texts per call; defaults to `MAX_TEXT_BATCH`.
        buckets: sequence of int. The batch sizes calls are padded to; defaults to
            `TEXT_BUCKETS`.
    """

    def __init__(self, embed_texts: Callable[[list[str]], np.ndarray],
                 max_batch: int = MAX_TEXT_BATCH,
                 buckets: Sequence[int] = TEXT_BUCKETS) -> None:  # fmt: skip
        self.embed_texts, self.max_batch = embed_texts, max_batch
        self.buckets = sorted({b for b in buckets if b < max_batch} | {max_batch})
        self.batches = self.texts = 0  # for the metrics: model calls for texts, texts in them
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None
        self._thread = concurrent.futures.ThreadPoolExecutor(1, "videoprism-model")

    def start(self) -> None:
        """Starts the worker, in the running event loop."""
        self._queue = asyncio.Queue()
        self._worker = asyncio.get_running_loop().create_task(self._work())

    async def stop(self) -> None:
        """Stops the worker and the model thread (after the call in progress)."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        self._thread.shutdown(wait=True)

    async def text(self, text: str) -> np.ndarray:
        """One text's embedding, computed with whatever other texts are waiting."""
        return await self._put(_Item(self._future(), text=text))

    async def run(self, job: Callable[..., Any], *args: Any) -> Any:
        """`job(*args)` in the model thread, alone."""
        return await self._put(_Item(self._future(), job=job, args=args))

    def _future(self):
        return asyncio.get_running_loop().create_future()

    async def _put(self, item):
        if self._queue is None:
            raise RuntimeError("the model queue is not started")
        await self._queue.put(item)
        return await item.future

    async def _work(self):
        loop = asyncio.get_running_loop()
        while True:
            waiting = [await self._queue.get()]
            while not self._queue.empty() and len(waiting) < 4 * self.max_batch:
                waiting.append(self._queue.get_nowait())
            texts = [i for i in waiting if i.text is not None]
            for start in range(0, len(texts), self.max_batch):
                chunk = [i for i in texts[start : start + self.max_batch] if not i.future.done()]
                if chunk:
                    await self._answer(loop, chunk, self._embed, [i.text for i in chunk])
            for item in waiting:
                if item.text is None and not item.future.done():
                    await self._answer(loop, [item], item.job, *item.args)

    async def _answer(self, loop, items, fn, *args):
        try:
            result = await loop.run_in_executor(self._thread, fn, *args)
        except Exception as err:  # the requests get the error, the worker goes on
            for item in items:
                if not item.future.done():
                    item.future.set_exception(err)
            return
        for i, item in enumerate(items):
            if not item.future.done():
                item.future.set_result(result[i] if items[0].text is not None else result)

    def warm_up(self, lengths: Sequence[int] = (8, 16)) -> None:
        """Compiles the model for every batch size at the text lengths of most queries (a
        query is padded to 8, 16, 32 or 64 tokens, see `runtime.trim_padding`), in the
        model thread. A longer query compiles its shape when it first comes (once)."""
        for length in lengths:
            text = " ".join(["a"] * (length - 2))  # about `length` tokens with BOS/EOS
            for size in self.buckets:
                self.embed_texts([text] * size)

    def _embed(self, texts):
        padded = next(b for b in self.buckets if b >= len(texts))
        vectors = np.asarray(self.embed_texts(texts + [texts[-1]] * (padded - len(texts))))
        self.batches += 1
        self.texts += len(texts)
        return vectors[: len(texts)]

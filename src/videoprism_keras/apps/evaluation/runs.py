"""What every evaluation task's run does the same way: the sampling named in full, the
log line of what was embedded, and the record's shared parts (the sampling, the
bootstrap, the model), so that retrieval, classification, moments and the probes record
them alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ...constants import EVAL_INTERVAL_LEVEL

if TYPE_CHECKING:
    from .datasets import Dataset

# What a record says of videos that could not be read (every task: a video is left out
# with whatever queries it (or its windows) answers, and counted in items.failed).
FAILED_PROTOCOL = (
    "videos that cannot be decoded are excluded with their captions or queries, and counted"
)


def resolved_sampling(model: Any, num_frames: int | None, size: int | tuple[int, int] | None,
                      ) -> tuple[int, int | tuple[int, int]]:  # fmt: skip
    """(frames, size) as the model will sample: the given ones, else its own; the size one
    int where frames are square, else (height, width). Named in full so that the cache key
    and the record do not depend on a default."""
    from ...video import Sampling

    sampling = Sampling.for_model(model, num_frames, size)
    height, width = sampling.size
    return sampling.num_frames, height if height == width else (height, width)


def tell_videos(log: Callable[[str], None] | None, cached: Any, clips: int) -> None:
    """Tells `log` each video that could not be read, then how many videos this run
    embedded and how many came from the cache."""
    if not log:
        return
    for path, reason in cached.failures:
        log(f"skipped {path}: {reason}")
    failed = len(cached.failures)
    reused = clips - cached.embedded - failed
    log(f"videos: {cached.embedded} embedded, {max(reused, 0)} from the cache"
        + (f", {failed} failed" if failed else ""))  # fmt: skip


def make_task_record(task: str, dataset: Dataset, values: dict, intervals: dict, model: Any,
                     cache: Any, model_info: dict | None, num_frames: int,
                     size: int | tuple[int, int], bootstrap: int, seed: int,
                     settings: dict, failed: int, *,
                     sampling: Mapping[str, Any] | None = None) -> dict:  # fmt: skip
    """The record of a task (`results.make_record`), with what every task says the same
    way: the sampling (`sampling`: more of it, e.g. the moments' windows), the bootstrap,
    the model (given, else its name, its dtype policy's name and the cache's key)."""
    from . import results

    if model_info is None:
        policy = getattr(model, "dtype_policy", None)
        model_info = results.model_info(source=str(getattr(model, "name", "model")),
                                        dtype=str(getattr(policy, "name", "float32")),
                                        key=str(getattr(cache, "model_key", "")))  # fmt: skip
    return results.make_record(
        task=task, dataset=dataset, metrics=values, intervals=intervals, model=model_info,
        sampling={"num_frames": num_frames, "size": size, **(sampling or {})},
        bootstrap={"samples": bootstrap, "level": EVAL_INTERVAL_LEVEL, "seed": seed},
        settings=settings, failed=failed,
    )  # fmt: skip

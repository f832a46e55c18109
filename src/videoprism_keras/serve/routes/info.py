"""The service itself: whether it is up (no token needed), the index it serves, and
query statistics."""

from fastapi import APIRouter

from ...constants import VERSION
from ...video.times import seconds_or_none
from ..dependencies import AppSettings, Service
from ..limits import (
    MAX_BODY_BYTES,
    MAX_LABELS,
    MAX_REFINED_MOMENTS,
    MAX_TOP_K,
    MAX_UPLOAD_PIXELS,
    UPLOAD_TYPES,
)
from ..schemas import Health, IndexInfo, IndexSampling, Metrics

public = APIRouter(tags=["service"])  # outside the token check
router = APIRouter(tags=["service"])


@public.get("/health", response_model=Health)
async def health() -> Health:
    """The service is up (no token needed)."""
    return Health(status="ok")


@router.get("/info", response_model=IndexInfo)
async def info(service: Service, settings: AppSettings) -> IndexInfo:
    """The index: its size and version (now), preset and sampling."""
    size, version = await service.size()
    meta = service.index.meta
    sampling = recorded_sampling(meta)
    return IndexInfo(uri=str(service.index.uri), size=size, version=version,
                     preset=meta.get("preset"), dim=meta.get("dim"), sampling=sampling,
                     num_frames=sampling.num_frames, clip_seconds=sampling.clip_seconds,
                     stride_seconds=sampling.stride_seconds, dtype=sampling.dtype,
                     frame_size=sampling.size, clip_window=clip_window(sampling),
                     text_search=service.has_text,
                     engine=service.encoder.describe(), videoprism_keras=VERSION,
                     # "k": top_k's old name, for one release.
                     limits={"top_k": MAX_TOP_K, "k": MAX_TOP_K,
                             "upload_bytes": settings.max_upload_bytes,
                             "upload_types": sorted(UPLOAD_TYPES),
                             "upload_pixels": MAX_UPLOAD_PIXELS,
                             "body_bytes": MAX_BODY_BYTES, "labels": MAX_LABELS,
                             "refined_moments": MAX_REFINED_MOMENTS})  # fmt: skip


def recorded_sampling(meta: dict) -> IndexSampling:
    """The sampling an index's metadata records.

    Args:
        meta: dict. The index's metadata (`VideoIndex.meta`).
    """
    values = {key: meta.get(key) for key in IndexSampling.model_fields}
    for key in ("clip_seconds", "stride_seconds"):
        values[key] = seconds_or_none(values[key])  # NaN: no time, as arrays say it
    # A whole-video index records its clip length as None; an old one that could not
    # tell records nothing (whole_videos stays null).
    if "clip_seconds" in meta:
        values["whole_videos"] = values["clip_seconds"] is None
    return IndexSampling(**values)


def clip_window(sampling: IndexSampling) -> str | None:
    """The index's clips in words, for the page's header: "windows of 4 s every 2 s",
    "whole videos", or None where the index did not record how it cut its videos.

    Args:
        sampling: IndexSampling. The index's recorded sampling.
    """
    if sampling.whole_videos is None:
        return None
    if sampling.whole_videos:
        return "whole videos"
    length, stride = sampling.clip_seconds, sampling.stride_seconds or sampling.clip_seconds
    return f"windows of {_seconds(length)} every {_seconds(stride)}"


def _seconds(t: float) -> str:
    return f"{round(t, 2):g} s"  # hundredths: what a person reads of a window's length


@router.get("/metrics", response_model=Metrics)
async def metrics(service: Service) -> Metrics:
    """Queries, errors and latency (p50, p95) per kind since the start."""
    return Metrics(**service.metrics.summary(), text_batches=service.queue.batches,
                   texts_batched=service.queue.texts)  # fmt: skip

"""The service itself: whether it is up (no token needed), the index it serves, and
query statistics."""

from fastapi import APIRouter

from ...constants import VERSION
from ..dependencies import AppSettings, Service
from ..limits import MAX_LABELS, MAX_TOP_K, UPLOAD_TYPES
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
    sampling = IndexSampling(**{key: meta.get(key) for key in IndexSampling.model_fields})
    return IndexInfo(uri=str(service.index.uri), size=size, version=version,
                     preset=meta.get("preset"), dim=meta.get("dim"), sampling=sampling,
                     num_frames=sampling.num_frames, clip_seconds=sampling.clip_seconds,
                     stride_seconds=sampling.stride_seconds, dtype=sampling.dtype,
                     frame_size=sampling.size,
                     text_search=service.has_text, videoprism_keras=VERSION,
                     # "k": top_k's old name, for one release.
                     limits={"top_k": MAX_TOP_K, "k": MAX_TOP_K,
                             "upload_bytes": settings.max_upload_bytes,
                             "upload_types": sorted(UPLOAD_TYPES),
                             "labels": MAX_LABELS})  # fmt: skip


@router.get("/metrics", response_model=Metrics)
async def metrics(service: Service) -> Metrics:
    """Queries, errors and latency (p50, p95) per kind since the start."""
    return Metrics(**service.metrics.summary(), text_batches=service.queue.batches,
                   texts_batched=service.queue.texts)  # fmt: skip

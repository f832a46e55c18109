"""The service itself: whether it is up (no token needed), the index it serves, and
query statistics."""

from fastapi import APIRouter

from ...constants import VERSION
from ..dependencies import AppSettings, Service
from ..limits import MAX_K, MAX_LABELS, UPLOAD_TYPES
from ..schemas import Health, IndexInfo, Metrics

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
    return IndexInfo(uri=str(service.index.uri), size=size, version=version,
                     preset=meta.get("preset"), dim=meta.get("dim"),
                     num_frames=meta.get("num_frames"), frame_size=meta.get("size"),
                     clip_seconds=meta.get("clip_seconds"),
                     stride_seconds=meta.get("stride_seconds"), dtype=meta.get("dtype"),
                     text_search=service.has_text, videoprism_keras=VERSION,
                     limits={"k": MAX_K, "upload_bytes": settings.max_upload_bytes,
                             "upload_types": sorted(UPLOAD_TYPES),
                             "labels": MAX_LABELS})  # fmt: skip


@router.get("/metrics", response_model=Metrics)
async def metrics(service: Service) -> Metrics:
    """Queries, errors and latency (p50, p95) per kind since the start."""
    return Metrics(**service.metrics.summary(), text_batches=service.queue.batches,
                   texts_batched=service.queue.texts)  # fmt: skip

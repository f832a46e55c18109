"""The API's JSON: what each route answers and what `/labels` takes. FastAPI checks
requests and writes the OpenAPI schema (`/docs`) from these."""

import os

from pydantic import BaseModel, Field

from ..apps import IndexedClip, SearchHit
from ..video.times import seconds_or_none
from .limits import MAX_LABELS


class Hit(BaseModel):
    id: str = Field(description="the clip's id: <file id>@<start>-<end> (or @whole)")
    path: str = Field(description="the video file, as the index holds it")
    name: str = Field(description="the file's name")
    start_s: float | None = Field(description="the clip's start in the video (s); null: whole")
    end_s: float | None
    duration_s: float | None = Field(description="the whole video's duration (s)")
    score: float | None = Field(None, description="cosine similarity to the query")
    poster_url: str
    video_url: str

    @classmethod
    def from_row(cls, row: SearchHit | IndexedClip, score: float | None = None) -> "Hit":
        """A hit from the index: a `SearchHit` of its search or the `IndexedClip` of its
        `clip()`.

        Args:
            row: SearchHit or IndexedClip. The clip.
            score: float or None. Its similarity to the query; defaults to None (a clip
                that is not a search's hit).
        """
        clip = row.id
        return cls(id=clip, path=row.path, name=os.path.basename(row.path),
                   start_s=seconds_or_none(row.start_s), end_s=seconds_or_none(row.end_s),
                   duration_s=seconds_or_none(row.duration_s), score=score,
                   poster_url=f"api/clips/{clip}/poster.jpg",
                   video_url=f"api/clips/{clip}/video")  # fmt: skip


class SearchResponse(BaseModel):
    query: dict = Field(description="what was searched for, and the filters")
    hits: list[Hit]
    index_size: int = Field(description="clips in the index when it was searched")
    took_ms: float


class Label(BaseModel):
    label: str
    probability: float


class LabelsResponse(BaseModel):
    clip: Hit
    labels: list[Label] = Field(description="every label, most probable first")


class LabelsRequest(BaseModel):
    labels: list[str] = Field(description="free-text class names", min_length=1,
                              max_length=MAX_LABELS)  # fmt: skip


class IndexSampling(BaseModel):
    """How the index's clips were sampled (its recorded settings; null where unknown)."""

    num_frames: int | None
    size: int | list[int] | None = Field(description="frame size: one int for a square, "
                                         "else [height, width]")  # fmt: skip
    clip_seconds: float | None
    stride_seconds: float | None
    dtype: str | None
    whole_videos: bool | None = Field(None, description="true: one clip per whole video; "
                                      "false: windows of clip_seconds every stride_seconds; "
                                      "null: not recorded")  # fmt: skip


class IndexInfo(BaseModel):
    uri: str
    size: int = Field(description="clips in the index (the frame size is sampling.size)")
    version: int | None = Field(description="the table's latest committed version")
    preset: str | None
    dim: int | None
    sampling: IndexSampling
    num_frames: int | None = Field(description="sampling.num_frames")
    clip_seconds: float | None = Field(description="sampling.clip_seconds")
    stride_seconds: float | None = Field(description="sampling.stride_seconds")
    dtype: str | None = Field(description="sampling.dtype")
    clip_window: str | None = Field(
        None,
        description="the clips in words, e.g. 'windows of 4 s every 2 s' or 'whole "
        "videos'; null where the index did not record it",
    )
    frame_size: int | list[int] | None = Field(
        description="deprecated, removed in the next release: sampling.size", deprecated=True
    )
    text_search: bool = Field(description="whether the model takes text (an LvT preset)")
    engine: str = Field(description="what embeds the queries' videos, in one line "
                        "(`Encoder.describe`: the engine and precision)")  # fmt: skip
    videoprism_keras: str
    limits: dict


class Health(BaseModel):
    status: str


class KindMetrics(BaseModel):
    count: int
    errors: int
    p50_ms: float
    p95_ms: float
    mean_ms: float


class Metrics(BaseModel):
    uptime_s: float
    queries: int
    errors: int
    by_kind: dict[str, KindMetrics]
    text_batches: int = Field(description="model calls that embedded texts")
    texts_batched: int = Field(description="texts embedded in those calls")


class Error(BaseModel):
    error: str


# The 4xx answers every token-guarded route may give, for the OpenAPI schema.
ERRORS = {code: {"model": Error} for code in (400, 401, 404, 413, 415, 422)}


# ------------------------------------------------------------ moments and copies
class Video(BaseModel):
    """A video of the index, as the page plays it (any of its clips' ids names the file)."""

    path: str = Field(description="the video file, as the index holds it")
    name: str
    duration_s: float | None = Field(description="the whole video's duration (s)")
    clip: str = Field(description="the id of one of its clips (its poster, its video)")
    poster_url: str
    video_url: str = Field(description="the file, with HTTP Range (seek with #t=…)")

    @classmethod
    def from_row(cls, row: SearchHit | IndexedClip) -> "Video":
        """The video a clip of the index is in."""
        return cls(path=row.path, name=os.path.basename(row.path),
                   duration_s=seconds_or_none(row.duration_s), clip=row.id,
                   poster_url=f"api/clips/{row.id}/poster.jpg",
                   video_url=f"api/clips/{row.id}/video")  # fmt: skip


class Moment(BaseModel):
    path: str
    start_s: float = Field(description="where the moment starts in the video (s)")
    end_s: float
    score: float = Field(description="what the moments rank by (higher is closer): refined, "
                         "the cosine similarity of the whole span embedded as one clip; "
                         "coarse, its peak on the curve")  # fmt: skip
    clip: str | None = Field(None, description="the indexed window at the moment's peak "
                             "(its poster); null where the index no longer holds it")  # fmt: skip
    poster_url: str | None = None


class Curve(BaseModel):
    """One video's similarity to the query over time: one value per indexed window, or,
    for a video of more windows than `limits.MAX_CURVE_POINTS`, per run of consecutive
    windows (its highest value, from the run's first start to its latest end)."""

    path: str
    start_s: list[float] = Field(description="each window's start (s), ascending")
    end_s: list[float]
    scores: list[float] = Field(
        description="each window's similarity to the query: their cosine after centring both "
        "on the index's mean embedding"
    )


class MomentsResponse(BaseModel):
    query: dict = Field(description="what was searched for, and the filters")
    moments: list[Moment] = Field(description="best first")
    curves: list[Curve] = Field(description="the whole curve of every video with a moment, "
                                "in the order they first appear in `moments`")  # fmt: skip
    videos: dict[str, Video] = Field(description="every video above, by path")
    refined: bool = Field(description="whether the moments were refined coarse-to-fine "
                          "(false: the index's windows as they are)")  # fmt: skip
    index_size: int
    took_ms: float


class Span(BaseModel):
    path: str
    start_s: float | None = Field(description="where the shared content starts (s); null: "
                                  "a whole video (an index of whole videos)")  # fmt: skip
    end_s: float | None


class Copy(BaseModel):
    a: Span
    b: Span
    offset_s: float = Field(description="a time t in b is t + offset_s in a")
    score: float = Field(description="how alike the shared spans are (cosine similarity)")


class CopyGroup(BaseModel):
    paths: list[str] = Field(description="a video and all its copies")
    copies: list[Copy]


class CopiesResponse(BaseModel):
    query: dict = Field(description="threshold and min_seconds, as used")
    groups: list[CopyGroup]
    videos: dict[str, Video] = Field(description="every video above, by path")
    index_version: int | None = Field(description="the table version the copies are of")
    cached: bool = Field(description="whether the answer was kept from an earlier request "
                         "(copies are a whole-index job, kept per table version)")  # fmt: skip
    took_ms: float


class ClipCopiesResponse(BaseModel):
    clip: Hit
    copies: list[Copy] = Field(description="the copies involving the clip's video, each "
                               "turned so that `a` is that video")  # fmt: skip
    videos: dict[str, Video]
    index_version: int | None
    cached: bool
    took_ms: float

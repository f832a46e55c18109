"""The engine of a Ray run: one artefact for every actor.

An engine other than Keras builds its artefact from the model (OpenVINO int8 calibrates
it on clips), so actors that each built their own could embed one index with several
int8 models. The driver builds it (or finds it in its cache) before the pipeline starts,
for the job's clip shape, calibrated on the job's first clips decoded as the pipeline
decodes them (`prepare`); its files travel to the actors through Ray's object store, and
each actor installs them into its own engine cache (`engine.artefacts.install`), where its
`Encoder` finds them without building (the model stage checks that it embeds with the
driver's artefact).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..constants import CALIBRATION_CLIPS, RAY_SHIPPED_FOLDER

if TYPE_CHECKING:
    from ..model.backbone import VideoPrismBackbone
    from ..runtime import Encoder


@dataclass(frozen=True)
class EngineChoice:
    """The engine and precision a Ray run embeds with (resolved by the caller, as for a
    local `Encoder`), and where the artefact is cached: `cache_dir` the driver's, and
    `actor_cache_dir` the actors' (None: `hub.cache_root()/"engines"` of their node)."""

    engine: str
    precision: str
    cache_dir: str | None = None
    actor_cache_dir: str | None = None

    @classmethod
    def of(cls, engine: str, precision: str) -> EngineChoice | None:
        """The choice for `engine` at `precision`; None for Keras (each actor loads the
        model in its own dtype, no artefact to ship)."""
        return None if engine == "keras" else cls(engine, precision)


@dataclass(frozen=True)
class ShippedArtefact:
    """An artefact on its way to the actors: `files` (an object reference to its files'
    bytes by name) and `meta` (its meta.json)."""

    engine: str
    precision: str
    files: Any
    meta: dict
    cache_dir: str | None = None

    def encoder(self, model: VideoPrismBackbone, make: type[Encoder] | None = None) -> Encoder:
        """The actor's `Encoder` (`make`, default `Encoder`) on the shipped artefact,
        installed into the actor's engine cache first (nothing to do where it shares the
        driver's). Where that cache holds another build under the same key (calibrated on
        other clips: the key names "the first clips embedded", not which), the shipped one
        goes to a folder of its own beside it (`RAY_SHIPPED_FOLDER`)."""
        import ray

        from ..engine import artefacts
        from ..runtime import Encoder

        files = ray.get(self.files)
        root = artefacts.cache_folder(self.cache_dir)
        if artefacts.read_meta(artefacts.install(root, files, self.meta)) != self.meta:
            root = artefacts.folder_of(root / RAY_SHIPPED_FOLDER, artefacts.key_of(self.meta))
            artefacts.install(root, files, self.meta)
        return (make or Encoder)(model, engine=self.engine, precision=self.precision,
                                 cache_dir=root)  # fmt: skip


def first_clips(items: list[dict], decode: Callable, sampling: dict) -> np.ndarray:
    """The job's first `CALIBRATION_CLIPS` clips, decoded as the pipeline decodes them,
    as the model's float32 input (none: an empty array)."""
    from ..video.clip_rows import as_model_input

    clips = []
    for item in items:
        for row in decode(item, **sampling):
            if row["status"] == "clip":
                clips.append(row["frames"])
            if len(clips) == CALIBRATION_CLIPS:
                return as_model_input(np.stack(clips))
    return as_model_input(np.stack(clips)) if clips else np.zeros((0,), np.float32)


def prepare(ray: Any, model: VideoPrismBackbone, choice: EngineChoice, items: list[dict],
            decode: Callable, sampling: dict) -> ShippedArtefact | None:  # fmt: skip
    """The driver's artefact of `choice` for the job's clip shape, built from `model`
    (float32) on the job's first clips or found in the driver's cache, put in the object
    store; None for Keras (each actor loads the model) or when no clip decodes (nothing
    to embed)."""
    from ..engine import artefacts
    from ..engine.resolve import resolve
    from ..engine.session import EngineVideo

    if choice.engine == "keras":
        return None
    resolve(model, choice.engine, choice.precision)  # a float32 model, an engine that runs it
    clips = first_clips(items, decode, sampling)
    if not len(clips):
        return None
    video = EngineVideo(model, choice.engine, choice.precision, cache_dir=choice.cache_dir)
    shape = (sampling["num_frames"], *sampling["size"])
    folder, meta = artefacts.cached(video.root, video.inputs(shape),
                                    lambda staging: video.build(staging, shape, clips))  # fmt: skip
    files = ray.put(artefacts.files_of(Path(folder)))
    return ShippedArtefact(choice.engine, choice.precision, files, meta, choice.actor_cache_dir)

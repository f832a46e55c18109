"""The model stage of the Ray pipeline (`ray_pipeline.py`): a Ray actor holding one
loaded model, uint8 clips in, embeddings (and index posters) out.

The frames become the in-process float32 input bit for bit (`as_model_input`), and run
through the same compiled `Encoder` as in process: on Keras, or on the driver's engine
artefact (`ray_engine.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .embedding import select

if TYPE_CHECKING:
    from ..model.backbone import VideoPrismBackbone
    from ..runtime import Encoder
    from .ray_engine import ShippedArtefact


@dataclass(frozen=True)
class PresetLoader:
    """Loads a backbone from a preset in each actor (every node reads the preset: a hub
    name, or a path on a filesystem they share), instead of shipping the driver's; with
    `quantize` ("int8"), Keras-quantized once loaded, as the driver's is."""

    preset: str
    overrides: dict = field(default_factory=dict)
    quantize: str | None = None

    def __call__(self) -> VideoPrismBackbone:
        from ..model.backbone import VideoPrismBackbone

        model = VideoPrismBackbone.from_preset(self.preset, **self.overrides)
        if self.quantize:
            model.quantize(self.quantize)
        return model


class Embedder:
    """The model stage: one loaded model per actor; uint8 frames in, embeddings out.

    Args:
        model: `VideoPrismBackbone` or callable. A backbone (pickled to each actor) or a
            callable that loads one there (e.g. a `PresetLoader`).
        kind: str. The embedding, as `embed_videos` names it ("video", …).
        posters: bool. Whether each clip also gets a JPEG poster (for an index).
        encoder: `Encoder` subclass or None. Makes the encoder (a subclass may time or
            count the work). Defaults to None (`Encoder`).
        batch_size: int or None. Batches are padded to a power of two up to this.
            Defaults to None.
        engine: `ShippedArtefact` or None. The driver's engine artefact, which every
            actor runs; None: Keras. Defaults to None.
    """

    def __init__(self, model: VideoPrismBackbone | Callable[[], VideoPrismBackbone], kind: str,
                 posters: bool, encoder: type[Encoder] | None = None,
                 batch_size: int | None = None,
                 engine: ShippedArtefact | None = None):  # fmt: skip
        from ..runtime import Encoder

        self.model = model() if callable(model) and not hasattr(model, "encode_video") else model
        if engine is None:
            self.encoder = (encoder or Encoder)(self.model)
        else:
            self.encoder = engine.encoder(self.model, encoder)
        self.shipped = None if engine is None else engine.meta["key"]
        self.kind, self.posters, self.batch_size = kind, posters, batch_size

    def __call__(self, batch: dict) -> dict:
        from ..video.clip_rows import as_model_input

        frames = batch.pop("frames")
        todo = np.flatnonzero(batch["status"] == "clip")
        vectors = None
        if len(todo):
            # Batches come in any size (Ray Data cuts them at block ends): padded to a
            # power of two (or the batch size), the model compiles a few shapes, not one
            # per size.
            padded = min(1 << (len(todo) - 1).bit_length(), max(len(todo), self.batch_size or 1))
            pixels = as_model_input(frames[np.pad(todo, (0, padded - len(todo)), mode="edge")])
            outputs = self.encoder.video(pixels)
            if self.shipped and self.encoder.artefact != self.shipped:
                raise RuntimeError(f"an actor embedded with artefact {self.encoder.artefact}, "
                                   f"not the driver's {self.shipped}")  # fmt: skip
            done = np.asarray(select(self.model, outputs, self.kind), np.float32)[: len(todo)]
            vectors = np.zeros((len(frames), *done.shape[1:]), np.float32)
            vectors[todo] = done
        batch["vector"] = np.zeros((len(frames), 1), np.float32) if vectors is None else vectors
        if self.posters:
            from ..video.images import poster_jpeg

            posters = np.full(len(frames), b"", dtype=object)
            for i in todo:
                posters[i] = poster_jpeg(frames[i])
            batch["poster"] = posters
        return batch

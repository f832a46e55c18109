"""Zero-shot video classification with free-text labels, as in the official demo.

Each label becomes a prompt ("a video of {}."), the text tower embeds the prompts,
and a video's class probabilities are the softmax, over labels, of the cosine
similarities divided by a temperature (both defaults are the official colab's).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..constants import PROMPT_TEMPLATE, TEMPERATURE
from ..runtime import Encoder, softmax

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from ..model.backbone import VideoPrismBackbone
    from ..tokenizer import VideoPrismTokenizer

DEFAULT_TEMPLATE = PROMPT_TEMPLATE  # the name this module has always exported


def label_embeddings(embed_texts: Callable[[list[str]], np.ndarray], labels: Sequence[str],
                     templates: Sequence[str]) -> np.ndarray:  # fmt: skip
    """(C, D) L2-normalised embeddings of the labels: each label's prompts (one per
    template, "{}" replaced by the label) embedded by `embed_texts` (a list of texts →
    (N, D) L2-normalised rows), averaged and normalised again, as CLIP ensembles its
    prompts. With one template, its prompts' embeddings as they are."""
    templates = list(templates)
    if not templates:
        raise ValueError("templates: expected at least one prompt template. Received: none")
    for template in templates:
        if "{}" not in template:
            raise ValueError(f"template must contain '{{}}' for the label; got {template!r}")
    prompts = [template.replace("{}", label) for template in templates for label in labels]
    embedded = np.asarray(embed_texts(prompts), np.float32)
    if len(templates) == 1:
        return embedded
    mean = embedded.reshape(len(templates), len(labels), -1).mean(axis=0)
    return mean / np.linalg.norm(mean, axis=-1, keepdims=True)


def similarities(video_embeddings: ArrayLike, text_embeddings: np.ndarray) -> np.ndarray:
    """(N, D) (or (D,)) normalised video embeddings, (C, D) normalised text ones → (N, C)
    cosine similarities."""
    return np.atleast_2d(np.asarray(video_embeddings)) @ np.asarray(text_embeddings).T


class ZeroShotClassifier:
    """Labels videos by the similarity of their embeddings to prompts of the labels.

    Args:
        model: `VideoPrismBackbone`. A multimodal one (an LvT preset).
        tokenizer: `VideoPrismTokenizer`. Its tokenizer.
        labels: sequence of str. Class names, e.g. ["drumming", "cooking"].
        template: str. The prompt, with one "{}" for the label (other braces are kept
            as they are). Defaults to `PROMPT_TEMPLATE` ("a video of {}.").
        temperature: float. The softmax temperature on cosine similarities. Defaults
            to `TEMPERATURE` (0.01).
        encoder: `Encoder` or None. The compiled model calls. Defaults to None (a new
            `Encoder(model)`).
    """

    def __init__(self, model: VideoPrismBackbone, tokenizer: VideoPrismTokenizer,
                 labels: Sequence[str], template: str = PROMPT_TEMPLATE,
                 temperature: float = TEMPERATURE,
                 encoder: Encoder | None = None) -> None:  # fmt: skip
        if not model.is_multimodal:
            raise ValueError("zero-shot classification needs a video-text (LvT) model")
        if isinstance(labels, str):
            raise ValueError(f"labels must be a list of class names, not one string: {labels!r}")
        labels = [str(label) for label in labels]
        if not labels or len(set(labels)) != len(labels):
            raise ValueError(f"labels must be non-empty and distinct; got {labels}")
        if "{}" not in template:  # before the encoder compiles
            raise ValueError(f"template must contain '{{}}' for the label; got {template!r}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0; got {temperature}")
        self.model, self.labels = model, labels
        self.template, self.temperature = template, temperature
        self.prompts = [template.replace("{}", label) for label in labels]
        self.encoder = encoder or Encoder(model)
        embed = lambda texts: self.encoder.text(*tokenizer.tokenize_texts(texts))  # noqa: E731
        self.text_embeddings = label_embeddings(embed, labels, [template])  # (C, D), normalised

    def similarities(self, video_embeddings: ArrayLike) -> np.ndarray:
        """(N, D) (or (D,)) normalised video embeddings → (N, C) cosine similarities."""
        return similarities(video_embeddings, self.text_embeddings)

    def probabilities(self, video_embeddings: ArrayLike) -> np.ndarray:
        """(N, C): the softmax over labels of similarity / temperature; rows sum to 1."""
        return softmax(self.similarities(video_embeddings) / self.temperature)

    def classify(self, video_embeddings: ArrayLike,
                 top_k: int = 5) -> list[list[tuple[str, float]]]:  # fmt: skip
        """Per video, the top-k (label, probability), best first (all labels if fewer)."""
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1; got {top_k}")
        probs = self.probabilities(video_embeddings)
        order = np.argsort(-probs, axis=-1, kind="stable")[:, :top_k]
        return [
            [(self.labels[j], float(p[j])) for j in row]
            for p, row in zip(probs, order, strict=True)
        ]

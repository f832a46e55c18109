"""Zero-shot video classification with free-text labels, as in the official demo.

Each label becomes a prompt ("a video of {}."), the text tower embeds the prompts,
and a video's class probabilities are the softmax, over labels, of the cosine
similarities divided by a temperature (0.01 in the official colab).
"""

import numpy as np

from ..runtime import Encoder

DEFAULT_TEMPLATE = "a video of {}."


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


class ZeroShotClassifier:
    """Args:
    model: a multimodal `VideoPrismBackbone` (an LvT preset).
    tokenizer: its `VideoPrismTokenizer`.
    labels: class names, e.g. ["drumming", "cooking"].
    template: prompt with one "{}" for the label.
    temperature: softmax temperature on cosine similarities.
    """

    def __init__(self, model, tokenizer, labels, template=DEFAULT_TEMPLATE, temperature=0.01,
                 encoder=None):  # fmt: skip
        if not model.is_multimodal:
            raise ValueError("zero-shot classification needs a video-text (LvT) model")
        labels = [str(label) for label in labels]
        if not labels or len(set(labels)) != len(labels):
            raise ValueError(f"labels must be non-empty and distinct; got {labels}")
        if "{}" not in template:
            raise ValueError(f"template must contain '{{}}' for the label; got {template!r}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0; got {temperature}")
        self.model, self.labels, self.template, self.temperature = (
            model,
            labels,
            template,
            temperature,
        )
        self.encoder = encoder or Encoder(model)
        ids, mask = tokenizer.tokenize_texts([template.format(label) for label in labels])
        self.text_embeddings = self.encoder.text(ids, mask)  # (C, D), L2-normalised

    def similarities(self, video_embeddings) -> np.ndarray:
        """(N, D) normalised video embeddings → (N, C) cosine similarities."""
        return np.asarray(video_embeddings) @ self.text_embeddings.T

    def probabilities(self, video_embeddings) -> np.ndarray:
        return softmax(self.similarities(video_embeddings) / self.temperature)

    def classify(self, video_embeddings, top_k=5) -> list[list[tuple[str, float]]]:
        """Per video, the top-k (label, probability), best first."""
        probs = self.probabilities(video_embeddings)
        order = np.argsort(-probs, axis=-1)[:, :top_k]
        return [
            [(self.labels[j], float(p[j])) for j in row]
            for p, row in zip(probs, order, strict=True)
        ]

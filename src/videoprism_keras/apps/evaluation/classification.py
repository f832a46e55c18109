"""Zero-shot classification on a labelled dataset (Kinetics, Something-Something v2,
Charades, or a CSV of your own): the metrics from embeddings, and the whole run.

Each label becomes prompts (the official demo's template, or an ensemble: `templates`),
embedded by the text tower (`zero_shot.label_embeddings`, as `videoprism classify` does);
a clip's scores are its cosine similarities to the labels. Single-label sets report top-1,
top-5 and mean per-class accuracy, multi-label ones (Charades) mAP.

A clip that cannot be decoded is left out and counted (the record's items.failed), as
missing videos are (items.missing).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ...constants import EVAL_INTERVAL_LEVEL, EVAL_TEMPLATE_SETS
from . import metrics
from .retrieval import make_task_record, resolved_sampling, tell_videos

if TYPE_CHECKING:
    from ...model.backbone import VideoPrismBackbone
    from ...tokenizer import VideoPrismTokenizer
    from .cache import EmbeddingCache
    from .datasets import Dataset

TOP_KS = (1, 5)
# What the record says of clips that could not be read.
FAILED_PROTOCOL = "videos that cannot be decoded are excluded, and counted"


def read_templates(templates: str | os.PathLike | Sequence[str]) -> tuple[str, ...]:
    """Prompt templates: a set's name (`EVAL_TEMPLATE_SETS`: "official", "ensemble"), a
    text file of one template per line (blank lines and lines starting with # skipped), or
    the templates themselves. Each has one "{}" where the label goes."""
    if isinstance(templates, str) and templates in EVAL_TEMPLATE_SETS:
        return EVAL_TEMPLATE_SETS[templates]
    if isinstance(templates, (str, os.PathLike)):
        path = Path(templates).expanduser()
        if not path.is_file():
            names = ", ".join(EVAL_TEMPLATE_SETS)
            raise ValueError(f"templates: expected {names} or a text file of templates, one a "
                             f"line. Received: {os.fspath(templates)} (no such file)")  # fmt: skip
        lines = enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        found = [(n, line.strip()) for n, line in lines
                 if line.strip() and not line.strip().startswith("#")]  # fmt: skip
        for n, line in found:
            if "{}" not in line:
                raise ValueError(f"{path}, line {n}: expected a template with '{{}}' where "
                                 f"the label goes. Received: {line!r}")  # fmt: skip
        if not found:
            raise ValueError(f"{path}: expected templates, one a line. Received: none")
        return tuple(line for _, line in found)
    found = tuple(str(t) for t in templates)
    if not found or any("{}" not in t for t in found):
        raise ValueError("templates: expected templates with '{}' where the label goes. "
                         f"Received: {list(found)}")  # fmt: skip
    return found


def classification_metrics(scores, targets: Sequence[Sequence[int]], *, multi_label: bool,
                           bootstrap: int = 1000, seed: int = 0,
                           level: float = EVAL_INTERVAL_LEVEL) -> tuple[dict, dict]:  # fmt: skip
    """Single-label: top-1, top-5 and mean per-class accuracy; multi-label: mAP (fractions
    in [0, 1]); and their bootstrap intervals over the clips (`bootstrap` 0: none).

    Args:
        scores: (N, C) array. Clip × label scores.
        targets: N sequences of label indices (one each unless `multi_label`).
        multi_label: bool. Whether clips have several labels (mAP).

    Returns:
        (metrics, intervals): {name: value}, {name: (low, high)}.
    """
    scores = np.asarray(scores, np.float64)
    if scores.ndim != 2 or len(targets) != len(scores):
        raise ValueError(f"targets: expected one per clip ({len(scores)}). "
                         f"Received: {len(targets)}")  # fmt: skip
    statistics = _multi_label(scores, targets) if multi_label else _single_label(scores, targets)
    everything = np.arange(len(scores))
    values = {name: statistic(everything) for name, statistic in statistics.items()}
    intervals = {}
    for name, statistic in statistics.items() if bootstrap else ():
        intervals[name] = metrics.bootstrap_interval(statistic, len(scores), samples=bootstrap,
                                                     level=level, seed=seed)  # fmt: skip
    return values, intervals


def _single_label(scores: np.ndarray, targets) -> dict[str, Callable]:
    """{metric: its value on a resample of the clips (their indices)}."""
    several = [clip for clip, labels in enumerate(targets) if len(labels) != 1]
    if several:
        raise ValueError("targets: expected one label per clip (a single-label set). "
                         f"Received: {len(targets[several[0]])} for clip {several[0]}")  # fmt: skip
    truth = np.asarray([labels[0] for labels in targets], np.int64)
    # Top-k accuracy is the R@k of each clip's label rank (metrics.top_k ranks so too):
    # ranked once, each resample is then cheap.
    rank = metrics.ranks(scores, [[label] for label in truth])

    def top(k: int) -> Callable:
        return lambda picked: metrics.retrieval(rank[picked], (k,))[f"R@{k}"]

    statistics = {f"top{k}": top(k) for k in TOP_KS}
    statistics["mean_class_accuracy"] = lambda picked: metrics.mean_class_accuracy(
        scores[picked], truth[picked]
    )
    return statistics


def _multi_label(scores: np.ndarray, targets) -> dict[str, Callable]:
    positive = np.zeros(scores.shape, bool)
    for clip, labels in enumerate(targets):
        positive[clip, list(labels)] = True
    return {"mAP": lambda picked: metrics.mean_average_precision(scores[picked], positive[picked])}


def run_classification(model: VideoPrismBackbone, tokenizer: VideoPrismTokenizer,
                       dataset: Dataset, cache: EmbeddingCache, *,
                       templates: str | os.PathLike | Sequence[str] = "official",
                       batch_size: int = 4, num_frames: int | None = None, size=None,
                       ray=None, progress: bool = True, bootstrap: int = 1000, seed: int = 0,
                       encoder=None, model_info: dict | None = None,
                       log: Callable[[str], None] | None = None) -> dict:  # fmt: skip
    """Embeds the dataset's clips and its labels' prompts (through `cache`: what it holds
    is not embedded again) and measures zero-shot classification.

    Args:
        model: `VideoPrismBackbone`. A video-text (LvT) one.
        tokenizer: `VideoPrismTokenizer`. Its tokenizer.
        dataset: `Dataset`. A classification dataset (`read_dataset`).
        cache: `EmbeddingCache`. Where embeddings are kept, for this model and dataset.
        templates: str, path or sequence of str. "official" (the demo's one template),
            "ensemble" (ours, averaged), a file of templates or the templates
            (`read_templates`). Defaults to "official".
        batch_size, num_frames, size, ray, progress, bootstrap, seed, encoder,
            model_info, log: as `retrieval.run_retrieval`.

    Returns:
        The result record (`results.make_record`).
    """
    if dataset.task != "classification" or not dataset.labels:
        raise ValueError(f"dataset: expected a classification dataset (clips with labels). "
                         f"Received: {dataset.name}, a {dataset.task} dataset with "
                         f"{len(dataset.labels)} labels")  # fmt: skip
    from ..zero_shot import label_embeddings, similarities  # Keras: the run, not the checks

    chosen = read_templates(templates)
    frames, frame_size = resolved_sampling(model, num_frames, size)
    cached = cache.videos(model, dataset.clips, kind="video", num_frames=frames, size=frame_size,
                          batch_size=batch_size, ray=ray, progress=progress,
                          encoder=encoder)  # fmt: skip
    ok = np.asarray(cached.ok, bool)
    if not ok.any():
        raise ValueError(f"{dataset.annotations}: none of its {len(ok)} videos could be read "
                         f"(first: {cached.failures[0][0]}: {cached.failures[0][1]})")  # fmt: skip
    embed = lambda texts: cache.texts(model, tokenizer, texts, progress=progress,  # noqa: E731
                                      encoder=encoder)  # fmt: skip
    labels = label_embeddings(embed, dataset.labels, chosen)
    tell_videos(log, cached, len(ok))
    targets = [t for t, keep in zip(dataset.targets, ok, strict=True) if keep]
    values, intervals = classification_metrics(
        similarities(cached.vectors, labels), targets, multi_label=dataset.multi_label,
        bootstrap=bootstrap, seed=seed,
    )  # fmt: skip
    settings = {"templates": list(chosen), "template_set": template_set_name(templates),
                "labels": len(dataset.labels), "clips": int(ok.sum()),
                "multi_label": bool(dataset.multi_label), "failed": FAILED_PROTOCOL,
                "scores": "cosine similarity to each label's (mean) prompt embedding"}  # fmt: skip
    return make_task_record("classification", dataset, values, intervals, model, cache,
                            model_info, frames, frame_size, bootstrap, seed, settings,
                            len(cached.failures))  # fmt: skip


def template_set_name(templates) -> str:
    """How the record names the templates: the set's name, else a file's, else "given"."""
    if isinstance(templates, str) and templates in EVAL_TEMPLATE_SETS:
        return templates
    if isinstance(templates, (str, os.PathLike)):
        return f"file:{Path(templates).name}"
    return "given"

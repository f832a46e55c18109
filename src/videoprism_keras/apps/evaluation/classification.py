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
from numpy.typing import ArrayLike

from ...constants import EVAL_BOOTSTRAP_SAMPLES, EVAL_INTERVAL_LEVEL, EVAL_TEMPLATE_SETS
from . import metrics
from .runs import FAILED_PROTOCOL, make_task_record, resolved_sampling, tell_videos

if TYPE_CHECKING:
    from ...model.backbone import VideoPrismBackbone
    from ...runtime import Encoder
    from ...tokenizer import VideoPrismTokenizer
    from .cache import EmbeddingCache
    from .datasets import Dataset

TOP_KS = (1, 5)


def read_templates(templates: str | os.PathLike | Sequence[str]) -> tuple[str, ...]:
    """Prompt templates: a set's name (`EVAL_TEMPLATE_SETS`: "official", "ensemble"), a
    text file of one template per line (blank lines and lines starting with # skipped), or
    the templates themselves. Each has one "{}" where the label goes.

    Args:
        templates: str, path or sequence of str. A set's name, a file, or the templates.

    Returns:
        The templates.
    """
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


def template_set(templates: str | os.PathLike | Sequence[str]) -> tuple[str, tuple[str, ...]]:
    """The templates (`read_templates`) and how a record names them: the set's name
    ("official", "ensemble"), "file:<name>" for a file, "given" for templates passed as
    such.

    Args:
        templates: str, path or sequence of str. As `read_templates`.

    Returns:
        (name, templates).
    """
    chosen = read_templates(templates)
    if isinstance(templates, str) and templates in EVAL_TEMPLATE_SETS:
        return templates, chosen
    if isinstance(templates, (str, os.PathLike)):
        return f"file:{Path(templates).name}", chosen
    return "given", chosen


def classification_metrics(scores: ArrayLike, targets: Sequence[Sequence[int]], *,
                           multi_label: bool, bootstrap: int = EVAL_BOOTSTRAP_SAMPLES,
                           seed: int = 0,
                           level: float = EVAL_INTERVAL_LEVEL) -> tuple[dict, dict]:  # fmt: skip
    """Single-label: top-1, top-5 and mean per-class accuracy; multi-label: mAP (fractions
    in [0, 1]); and their bootstrap intervals over the clips (`bootstrap` 0: none). A tie
    between a clip's label and another counts against it (`metrics.ranks`).

    Args:
        scores: (N, C) array. Clip × label scores.
        targets: N sequences of label indices (one each unless `multi_label`).
        multi_label: bool. Whether clips have several labels (mAP).
        bootstrap: int. Resamples of the clips (0: no intervals). Defaults to
            `EVAL_BOOTSTRAP_SAMPLES`.
        seed: int. The resamples' seed. Defaults to 0.
        level: float. The intervals' coverage. Defaults to `EVAL_INTERVAL_LEVEL`.

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
    # Each clip's label ranked once (metrics.top_k and mean_class_accuracy rank so):
    # a resample then only picks ranks.
    rank = metrics.label_ranks(scores, truth)

    def top(k: int) -> Callable:
        return lambda picked: float((rank[picked] <= k).mean())

    statistics = {f"top{k}": top(k) for k in TOP_KS}
    statistics["mean_class_accuracy"] = lambda picked: metrics.class_accuracy(
        rank[picked], truth[picked]
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
                       batch_size: int = 4, num_frames: int | None = None,
                       size: int | tuple[int, int] | None = None,
                       ray: bool | str | None = None, progress: bool = True,
                       bootstrap: int = EVAL_BOOTSTRAP_SAMPLES, seed: int = 0,
                       encoder: Encoder | None = None, model_info: dict | None = None,
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
            (`read_templates`); the record names the set (`template_set`). Defaults to
            "official".
        batch_size: int. Videos embedded at a time. Defaults to 4.
        num_frames: int or None. Frames per clip. Defaults to None (the model's).
        size: int, (height, width) or None. Frame size. Defaults to None (the model's).
        ray: None, True (a local Ray instance) or an address. Embed on Ray. Defaults to
            None.
        progress: bool. Progress bars. Defaults to True.
        bootstrap: int. Resamples of the clips for the intervals (0: none). Defaults to
            `EVAL_BOOTSTRAP_SAMPLES`.
        seed: int. The bootstrap's seed. Defaults to 0.
        encoder: `Encoder` or None. The compiled model calls, to share. Defaults to None.
        model_info: dict or None. The record's model (`results.model_info`). Defaults to
            None: the model's name and dtype, the cache's model key.
        log: callable or None. Told, in a line, how many videos were embedded and read
            from the cache. Defaults to None.

    Returns:
        The result record (`results.make_record`).
    """
    if dataset.task != "classification" or not dataset.labels:
        raise ValueError(f"dataset: expected a classification dataset (clips with labels). "
                         f"Received: {dataset.name}, a {dataset.task} dataset with "
                         f"{len(dataset.labels)} labels")  # fmt: skip
    from ..zero_shot import label_embeddings, similarities  # Keras: the run, not the checks

    set_name, chosen = template_set(templates)
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
    settings = {"templates": list(chosen), "template_set": set_name,
                "labels": len(dataset.labels), "clips": int(ok.sum()),
                "multi_label": bool(dataset.multi_label), "failed": FAILED_PROTOCOL,
                "scores": "cosine similarity to each label's (mean) prompt embedding"}  # fmt: skip
    return make_task_record("classification", dataset, values, intervals, model, cache,
                            model_info, frames, frame_size, bootstrap, seed, settings,
                            len(cached.failures))  # fmt: skip

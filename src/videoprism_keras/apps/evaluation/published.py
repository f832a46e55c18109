"""The public checkpoints' published numbers, for `videoprism eval report` to set beside
ours: keyed by (preset, dataset, task, metric), in percent, as the official README gives
them. The dataset names are those `datasets.read_dataset` gives each benchmark; the
metric names those the tasks record. Numbers the README gives for tasks we do not run
(temporal and spatiotemporal action localization) are left out: no row would match them.

Source of every number: https://github.com/google-deepmind/videoprism (README.md,
"Results with frozen backbones": the rows marked "public", the released checkpoints).
"""

from __future__ import annotations

from ...presets import PRESET_CONFIGS, PRESET_FILES

SOURCE = "https://github.com/google-deepmind/videoprism#results-with-frozen-backbones"

_LVT_B, _LVT_L = "videoprism_lvt_public_v1_base", "videoprism_lvt_public_v1_large"
_B, _L = "videoprism_public_v1_base", "videoprism_public_v1_large"

# Zero-shot video-text retrieval, R@1 ("MSRVTT-1K", "VATEX", "ActivityNet" columns).
_RETRIEVAL = {  # dataset: {preset: (v2t R@1, t2v R@1)}
    "msrvtt-1k-a": {_LVT_B: (49.8, 50.1), _LVT_L: (50.6, 50.1)},
    "vatex-test": {_LVT_B: (73.1, 56.2), _LVT_L: (75.0, 57.2)},
    "activitynet-val1": {_LVT_B: (47.9, 48.8), _LVT_L: (49.1, 51.3)},
}
# Zero-shot video classification: (dataset, task, metric) per column of the README.
# SSv2-Temporal, SSv2-Events and NExT-QA (ATP-hard) have no adapter of their own: a CSV
# named so ("ssv2-temporal.csv", read as "csv:ssv2-temporal") is compared with them.
# Charades-STA is a temporal grounding benchmark: the README's column does not name its
# metric; we read it as mean IoU (the paper's zero-shot table), which `eval moments` records.
_ZERO_SHOT_COLUMNS = (("kinetics-400-val", "classification", "top1"),
                      ("ssv2-temporal", "classification", "top1"),
                      ("ssv2-events", "classification", "top1"),
                      ("nextqa-atp-hard", "classification", "top1"),
                      ("charades-test", "classification", "mAP"),
                      ("charades-sta-test", "moments", "mIoU"))  # fmt: skip
_ZERO_SHOT = {_LVT_B: (69.2, 14.6, 11.3, 31.1, 26.9, 48.6),
              _LVT_L: (72.4, 18.0, 12.4, 32.1, 32.4, 50.2)}  # fmt: skip
# Frozen backbone, attentive probe (VideoGLUE) of the video-only checkpoints: K400, MiT,
# SSv2, Diving48, Charades (mAP). The README's ActivityNet, AVA and AVA-Kinetics columns are
# temporal and spatiotemporal localization, which `eval probe` does not do.
_PROBE_COLUMNS = (("kinetics-400-val", "attentive_top1"), ("mit-val", "attentive_top1"),
                  ("ssv2-val", "attentive_top1"), ("diving48-test", "attentive_top1"),
                  ("charades-test", "attentive_mAP"))  # fmt: skip
_PROBE = {_B: (82.9, 39.7, 62.2, 64.3, 43.5), _L: (85.0, 43.3, 64.6, 67.6, 53.2)}
# What the report says under a table where a published number of these (dataset, task,
# metric) is shown: what we assumed in comparing.
NOTES = {
    ("charades-sta-test", "moments", "mIoU"): (
        "charades-sta-test: the published Charades-STA number is assumed to be mIoU (the "
        "README does not name its metric; unconfirmed)"
    ),
}


def _table() -> dict[tuple[str, str, str, str], float]:
    table = {}
    for dataset, by_preset in _RETRIEVAL.items():
        for preset, (v2t, t2v) in by_preset.items():
            table[preset, dataset, "retrieval", "v2t_R@1"] = v2t
            table[preset, dataset, "retrieval", "t2v_R@1"] = t2v
    for preset, values in _ZERO_SHOT.items():
        for (dataset, task, metric), value in zip(_ZERO_SHOT_COLUMNS, values, strict=True):
            table[preset, dataset, task, metric] = value
    for preset, values in _PROBE.items():
        for (dataset, metric), value in zip(_PROBE_COLUMNS, values, strict=True):
            table[preset, dataset, "probe", metric] = value
    return table


PUBLISHED: dict[tuple[str, str, str, str], float] = _table()


def preset_of(source: str) -> str | None:
    """The official preset `source` names (its name, its Hugging Face repository, or its
    official .npz file), or None for any other model."""
    source = str(source).rstrip("/")
    for preset, (repo, file) in PRESET_FILES.items():
        if source in (preset, f"hf://{repo}", f"hf://{repo}/{file}", file) or source.endswith(
            f"/{file}"
        ):
            return preset
    return None


def published(model: dict, dataset: str, task: str, metric: str,
              sampling: dict | None = None) -> float | None:  # fmt: skip
    """The published number (percent) for this row, or None where there is none: a model
    other than an official preset as released (LoRA adapters make another model; a dtype
    does not), a sampling other than the preset's own (the published numbers were measured
    at its frames and size), or a (dataset, task, metric) the README does not give.

    Args:
        model: dict. A record's "model" (`results.model_info`).
        dataset: str. The dataset's name; "csv:NAME" is looked up as NAME.
        task: str. The record's task.
        metric: str. The metric's name.
        sampling: dict or None. A record's "sampling"; None (or a "num_frames" or "size"
            of None): the model's own. Defaults to None.
    """
    preset = preset_of(model.get("source", ""))
    if preset is None or model.get("lora") or not own_sampling(preset, sampling):
        return None
    return PUBLISHED.get((preset, dataset_name(dataset), task, metric))


def own_sampling(preset: str, sampling: dict | None) -> bool:
    """Whether `sampling` (a record's) is the official `preset`'s own frames and size."""
    config = PRESET_CONFIGS[preset]
    frames, size = (sampling or {}).get("num_frames"), (sampling or {}).get("size")
    if frames is not None and frames != config["num_frames"]:
        return False
    if size is None:
        return True
    size = [size, size] if isinstance(size, int) else list(size)
    return size == list(config["image_shape"][:2])


def dataset_name(dataset: str) -> str:
    """The name the published numbers know `dataset` by ("csv:NAME" is NAME)."""
    return dataset.removeprefix("csv:")

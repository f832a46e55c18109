"""The evaluation's result records (apps/evaluation/results.py) and `videoprism eval report`
(apps/evaluation/report.py): every field written, atomically; errors that name the file;
two runs merged into Markdown and CSV beside the published numbers, newest first."""

import json
import re
import types

import pytest

from videoprism_keras.apps.evaluation import results


def _dataset(name="msrvtt-1k-a", clips=8, missing=2):
    """What make_record reads of a `datasets.Dataset`."""
    return types.SimpleNamespace(
        name=name, format="msrvtt", task="retrieval", annotations="/data/MSRVTT_JSFUSION_test.csv",
        clips=[object()] * clips, missing=[f"/data/v{i}.mp4" for i in range(missing)],
        total=clips + missing, protocol="one caption per video (1k-A)",
    )  # fmt: skip


def _record(dataset=None, model=None, metrics=None, intervals=None, task="retrieval", failed=1):
    return results.make_record(
        task=task,
        dataset=dataset or _dataset(),
        metrics=metrics if metrics is not None else {"t2v_R@1": 0.5, "t2v_MdR": 2.0},
        intervals=intervals if intervals is not None else {"t2v_R@1": (0.25, 0.75)},
        model=model or results.model_info("videoprism_lvt_public_v1_base", "float32"),
        sampling={"num_frames": 16, "size": 288},
        bootstrap={"samples": 1000, "level": 0.95, "seed": 0},
        settings={"templates": ["a video of {}."]},
        failed=failed,
    )


def test_record_holds_every_field_of_the_schema(tmp_path):
    lora = ["/runs/a/adapter.lora.npz"]
    model = results.model_info("/ckpt/lvt_small.ckpt.npz", "bfloat16", lora, key="k1")
    record = _record(model=model)
    assert set(record) == set(results.RECORD_FIELDS)
    assert record["schema"] == 1 and record["task"] == "retrieval"
    assert record["dataset"] == {"name": "msrvtt-1k-a", "format": "msrvtt",
                                 "annotations": "/data/MSRVTT_JSFUSION_test.csv",
                                 "protocol": "one caption per video (1k-A)"}  # fmt: skip
    assert record["model"] == {"name": "lvt_small.ckpt@bfloat16+adapter.lora",
                               "source": "/ckpt/lvt_small.ckpt.npz", "dtype": "bfloat16",
                               "lora": lora, "key": "k1"}  # fmt: skip
    assert record["items"] == {"used": 7, "missing": 2, "failed": 1, "total": 10}
    assert record["sampling"] == {"num_frames": 16, "size": 288}
    assert record["metrics"] == {"t2v_R@1": 0.5, "t2v_MdR": 2.0}
    assert record["intervals"] == {"t2v_R@1": [0.25, 0.75]}
    assert record["bootstrap"] == {"samples": 1000, "level": 0.95, "seed": 0}
    assert record["settings"] == {"templates": ["a video of {}."]}
    versions = record["versions"]
    assert set(versions) == {"videoprism_keras", "keras", "backend", "backend_version",
                             "numpy", "lancedb", "python", "platform"}  # fmt: skip
    assert versions["numpy"] and versions["python"].count(".") == 2
    assert record["created"].endswith("+00:00")
    assert results.read_records([results.write_record(record, tmp_path)])  # valid JSON, schema


def test_preset_name_is_the_model_name():
    info = results.model_info("videoprism_lvt_public_v1_large", "float32")
    assert info == {"name": "videoprism_lvt_public_v1_large",
                    "source": "videoprism_lvt_public_v1_large", "dtype": "float32",
                    "lora": [], "key": ""}  # fmt: skip
    assert results.model_info("hf://google/videoprism-lvt-base-f16r288", "float32")["name"] == (
        "videoprism-lvt-base-f16r288"
    )


@pytest.mark.parametrize(
    ("metrics", "intervals", "expected"),
    [
        ({"t2v_R@1": 50.1}, {}, r"metrics\['t2v_R@1'\]: expected a fraction in \[0, 1\]"),
        ({"top1": float("nan")}, {}, r"metrics\['top1'\]: expected a finite number"),
        ({"top1": 0.5}, {"top1": (0.6, 0.4)}, r"intervals\['top1'\]: expected low <= high"),
        ({"top1": 0.5}, {"top1": (0.4,)}, r"intervals\['top1'\]: expected \(low, high\)"),
    ],
)
def test_record_refuses_metrics_in_the_wrong_unit_or_shape(metrics, intervals, expected):
    with pytest.raises(ValueError, match=expected):
        _record(metrics=metrics, intervals=intervals)


def test_record_refuses_an_unknown_task_and_an_incomplete_model():
    with pytest.raises(ValueError, match=r"task: expected one of retrieval, .*Received: 'ranking'"):
        _record(task="ranking")
    with pytest.raises(ValueError, match=r"model: expected the fields .*Received: no key"):
        _record(model={"name": "m", "source": "m", "dtype": "float32", "lora": []})


def test_write_is_atomic_and_a_rerun_replaces(tmp_path):
    first = results.write_record(_record(metrics={"t2v_R@1": 0.25}), tmp_path / "out")
    assert first.name == "videoprism_lvt_public_v1_base__msrvtt-1k-a__retrieval.json"
    second = results.write_record(_record(metrics={"t2v_R@1": 0.75}), tmp_path / "out")
    assert second == first
    assert [p.name for p in (tmp_path / "out").iterdir()] == [first.name]  # no temporary left
    assert json.loads(first.read_text())["metrics"] == {"t2v_R@1": 0.75}


def test_file_name_is_sanitised(tmp_path):
    record = _record(dataset=_dataset(name="csv:my clips/2024"))
    path = results.write_record(record, tmp_path)
    assert path.name == "videoprism_lvt_public_v1_base__csv_my_clips_2024__retrieval.json"


def test_failed_write_leaves_no_temporary(tmp_path):
    record = _record()
    record["settings"] = {"bad": float("nan")}  # JSON refuses NaN: nothing may be left
    with pytest.raises(ValueError):
        results.write_record(record, tmp_path)
    assert list(tmp_path.iterdir()) == []


def _names(path, rest):
    """The pattern of an error that starts with `path`."""
    return re.escape(f"{path}: ") + rest


def test_read_records_errors_name_the_file(tmp_path):
    text = tmp_path / "notes.json"
    text.write_text("not json at all")
    with pytest.raises(
        ValueError, match=_names(text, "expected a result JSON file. Received: not")
    ):
        results.read_records([text])
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"acc1": 0.5}))
    with pytest.raises(ValueError, match=_names(other, "expected a .* schema 1 .*schema None")):
        results.read_records([other])
    broken = _record()
    del broken["metrics"]
    third = tmp_path / "third.json"
    third.write_text(json.dumps(broken))
    with pytest.raises(ValueError, match=_names(third, ".*Received: no metrics")):
        results.read_records([third])
    absent = tmp_path / "absent.json"
    with pytest.raises(ValueError, match=_names(absent, ".*Received: no such file")):
        results.read_records([absent])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=_names(empty, "expected result JSON files .*: none")):
        results.read_records([empty])


def test_read_records_takes_files_and_folders(tmp_path):
    a = results.write_record(_record(), tmp_path / "a")
    b = results.write_record(_record(dataset=_dataset("vatex-test")), tmp_path / "b")
    read = results.read_records([tmp_path / "a", b])
    assert [path for path, _ in read] == [a, b]
    assert read[1][1]["dataset"]["name"] == "vatex-test"

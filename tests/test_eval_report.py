"""The evaluation's result records (apps/evaluation/results.py) and `videoprism eval report`
(apps/evaluation/report.py): every field written, atomically; errors that name the file;
two runs merged into Markdown and CSV beside the published numbers, newest first; runs with
other settings kept apart and compared only at the preset's own sampling."""

import csv
import io
import json
import re

import pytest
from cli_helpers import call

from videoprism_keras.apps.evaluation import datasets, published, report, results


def _dataset(name="msrvtt-1k-a", clips=8, missing=2, missing_queries=0):
    dataset = datasets.Dataset(
        name=name, format="msrvtt", task="retrieval", annotations="/data/MSRVTT_JSFUSION_test.csv",
        clips=[datasets.Clip(f"/data/video{i}.mp4") for i in range(clips)],
        missing=[f"/data/v{i}.mp4" for i in range(missing)], total=clips + missing,
        protocol="one caption per video (1k-A)",
    )  # fmt: skip
    dataset.missing_queries = missing_queries  # a field of Dataset, or not yet: read either way
    return dataset


TEMPLATES = {"templates": ["a video of {}."], "template_set": "official", "clips": 7}


def _record(dataset=None, model=None, metrics=None, intervals=None, task="retrieval", failed=1,
            sampling=None, settings=None):  # fmt: skip
    return results.make_record(
        task=task,
        dataset=dataset or _dataset(),
        metrics=metrics if metrics is not None else {"t2v_R@1": 0.5, "t2v_MdR": 2.0},
        intervals=intervals if intervals is not None else {"t2v_R@1": (0.25, 0.75)},
        model=model or results.model_info("videoprism_lvt_public_v1_base", "float32"),
        sampling=sampling or {"num_frames": 16, "size": 288},
        bootstrap={"samples": 1000, "level": 0.95, "seed": 0},
        settings=settings or TEMPLATES,
        failed=failed,
    )


def test_record_holds_every_field_of_the_schema(tmp_path):
    lora = ["/runs/a/adapter.lora.npz"]
    model = results.model_info("/ckpt/lvt_small.ckpt.npz", "bfloat16", lora, key="k1")
    record = _record(model=model, dataset=_dataset(missing_queries=3))
    assert set(record) == set(results.RECORD_FIELDS)
    assert record["schema"] == 1 and record["task"] == "retrieval"
    assert record["dataset"] == {"name": "msrvtt-1k-a", "format": "msrvtt",
                                 "annotations": "/data/MSRVTT_JSFUSION_test.csv",
                                 "protocol": "one caption per video (1k-A)"}  # fmt: skip
    assert record["model"] == {"name": "lvt_small.ckpt@bfloat16+adapter.lora",
                               "source": "/ckpt/lvt_small.ckpt.npz", "dtype": "bfloat16",
                               "engine": "keras", "lora": lora, "key": "k1"}  # fmt: skip
    assert record["items"] == {"used": 7, "missing": 2, "failed": 1, "total": 10,
                               "missing_queries": 3}  # fmt: skip
    assert record["missing"] == ["/data/v0.mp4", "/data/v1.mp4"]
    assert record["sampling"] == {"num_frames": 16, "size": 288}
    assert record["metrics"] == {"t2v_R@1": 0.5, "t2v_MdR": 2.0}
    assert record["intervals"] == {"t2v_R@1": [0.25, 0.75]}
    assert record["bootstrap"] == {"samples": 1000, "level": 0.95, "seed": 0}
    assert record["settings"] == TEMPLATES
    assert re.fullmatch("[0-9a-f]{8}", record["settings_key"])
    assert record["settings_key"] == results.settings_key(record["sampling"], TEMPLATES)
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
                    "engine": "keras", "lora": [], "key": ""}  # fmt: skip
    # Another engine is another approximation of the same weights: its name says which.
    int8 = results.model_info("videoprism_lvt_public_v1_large", "int8", engine="openvino")
    assert int8["name"] == "videoprism_lvt_public_v1_large@int8-openvino"
    assert int8["engine"] == "openvino"
    for handle in ("hf://google/videoprism-lvt-base-f16r288",
                   "/ckpt/flax_lvt_base_f16r288_repeated.npz"):  # fmt: skip
        assert results.model_info(handle, "float32")["name"] == "videoprism_lvt_public_v1_base"
    other = results.model_info("hf://someone/my-tuned-prism", "float32")
    assert other["name"] == "my-tuned-prism"


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
    key = results.settings_key({"num_frames": 16, "size": 288}, TEMPLATES)
    assert first.name == f"videoprism_lvt_public_v1_base__msrvtt-1k-a__{key}__retrieval.json"
    second = results.write_record(_record(metrics={"t2v_R@1": 0.75}), tmp_path / "out")
    assert second == first
    assert [p.name for p in (tmp_path / "out").iterdir()] == [first.name]  # no temporary left
    assert json.loads(first.read_text())["metrics"] == {"t2v_R@1": 0.75}


def test_file_name_is_sanitised(tmp_path):
    model = results.model_info("/ckpt/my model.npz", "float32", key="0123456789abcdef")
    record = _record(dataset=_dataset(name="csv:my clips/2024"), model=model)
    path = results.write_record(record, tmp_path)
    key = record["settings_key"]
    assert path.name == f"my_model__csv_my_clips_2024__01234567-{key}__retrieval.json"


def test_failed_write_leaves_no_temporary_and_the_last_file_whole(tmp_path, monkeypatch):
    path = results.write_record(_record(metrics={"t2v_R@1": 0.25}), tmp_path)
    before = path.read_text()

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(results.os, "replace", fail)  # fails after the temporary is written
    with pytest.raises(OSError, match="disk full"):
        results.write_record(_record(metrics={"t2v_R@1": 0.75}), tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    assert path.read_text() == before


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
    read = results.read_records([tmp_path / "a", b, a])  # a named twice: read once
    assert [path for path, _ in read] == [a, b]
    assert read[1][1]["dataset"]["name"] == "vatex-test"


# ---- the report

BASE, LARGE = "videoprism_lvt_public_v1_base", "videoprism_lvt_public_v1_large"


def _written(folder, created, **kwargs):
    record = _record(**kwargs)
    record["created"] = created
    return results.write_record(record, folder)


@pytest.fixture
def two_runs(tmp_path):
    """LvT-B on MSR-VTT retrieval, LvT-L (as its hf:// handle) on Kinetics-400."""
    kinetics = _dataset("kinetics-400-val", clips=20, missing=0)
    a = _written(tmp_path / "a", "2026-12-07T10:00:00+00:00",
                 metrics={"t2v_R@1": 0.512, "v2t_R@1": 0.49, "t2v_MdR": 2.0},
                 intervals={"t2v_R@1": (0.48, 0.54)})  # fmt: skip
    b = _written(tmp_path / "b", "2026-12-07T11:00:00+00:00", dataset=kinetics,
                 task="classification", failed=0, sampling={"num_frames": 8, "size": [288, 288]},
                 model=results.model_info("hf://google/videoprism-lvt-large-f8r288", "float32"),
                 metrics={"top1": 0.7, "top5": 0.9}, intervals={})  # fmt: skip
    return a, b


MARKDOWN = f"""\
| model | dataset | task | settings | metric | ours | interval | used / total | missing | failed | published | difference |
|---|---|---|---|---|---|---|---|---|---|---|---|
| {BASE} | msrvtt-1k-a | retrieval |  | t2v_R@1 | 51.20 % | 48.00 – 54.00 (95%) | 7 / 10 | 2 | 1 | 50.1 | +1.10 |
| {BASE} | msrvtt-1k-a | retrieval |  | v2t_R@1 | 49.00 % |  | 7 / 10 | 2 | 1 | 49.8 | -0.80 |
| {BASE} | msrvtt-1k-a | retrieval |  | t2v_MdR | 2.00 |  | 7 / 10 | 2 | 1 |  |  |
| {LARGE} | kinetics-400-val | classification |  | top1 | 70.00 % |  | 20 / 20 | 0 | 0 | 72.4 | -2.40 |
| {LARGE} | kinetics-400-val | classification |  | top5 | 90.00 % |  | 20 / 20 | 0 | 0 |  |  |

- published: the official checkpoints' numbers ({published.SOURCE})
"""  # noqa: E501


def test_report_merges_two_runs_into_markdown_beside_the_published(two_runs):
    merged = report.report_of(two_runs)
    assert merged.markdown() == MARKDOWN


def test_report_csv_has_exact_values_and_differences(two_runs):
    rows = list(csv.DictReader(io.StringIO(report.report_of(two_runs).csv())))
    assert list(rows[0]) == list(report.COLUMNS)
    got = [(r["model"], r["metric"], r["unit"], r["ours"], r["low"], r["high"], r["level"],
            r["published"], r["difference"]) for r in rows]  # fmt: skip
    assert got == [
        (BASE, "t2v_R@1", "%", "51.2", "48.0", "54.0", "0.95", "50.1", "1.1"),
        (BASE, "v2t_R@1", "%", "49.0", "", "", "", "49.8", "-0.8"),
        (BASE, "t2v_MdR", "rank", "2.0", "", "", "", "", ""),
        (LARGE, "top1", "%", "70.0", "", "", "", "72.4", "-2.4"),
        (LARGE, "top5", "%", "90.0", "", "", "", "", ""),
    ]
    assert [(r["used"], r["missing"], r["failed"], r["total"]) for r in rows[::3]] == [
        ("7", "2", "1", "10"), ("20", "0", "0", "20")
    ]  # fmt: skip
    assert rows[0]["file"] == str(two_runs[0]) and rows[0]["created"].startswith("2026-12-07T10")


def test_newest_run_of_a_model_dataset_task_wins_and_the_report_says_so(tmp_path):
    new = _written(tmp_path / "new", "2026-12-07T12:00:00+00:00", metrics={"t2v_R@1": 0.6})
    old = _written(tmp_path / "old", "2026-12-07T09:00:00+00:00", metrics={"t2v_R@1": 0.4})
    key = results.read_record(new)["settings_key"]
    for order in ([new, old], [old, new]):
        merged = report.report_of(order)
        assert [(row.metric, row.ours) for row in merged.rows] == [("t2v_R@1", 60.0)]
        assert merged.notes[0] == (
            f"{BASE} · msrvtt-1k-a · retrieval · settings {key}: 2 runs; the newest is shown "
            f"(2026-12-07T12:00:00+00:00, {new}), not {old}"
        )


def test_settings_key_ignores_outcomes_and_tells_settings_apart():
    sampling = {"num_frames": 16, "size": 288}
    key = results.settings_key(sampling, TEMPLATES)
    rerun = {**TEMPLATES, "clips": 5}  # fewer videos read: the same run again
    assert results.settings_key(sampling, rerun) == key
    probe = {"attentive": {"epochs": 20, "losses": [0.9, 0.5]}, "token_grid": 8}
    probe_key = results.settings_key(sampling, probe)
    other_losses = {"attentive": {"epochs": 20, "losses": [0.8, 0.4]}, "token_grid": 8}
    assert results.settings_key(sampling, other_losses) == probe_key
    others = [
        (sampling, {**TEMPLATES, "template_set": "ensemble"}),
        ({"num_frames": 8, "size": 288}, TEMPLATES),
        ({"num_frames": 16, "size": 224}, TEMPLATES),
        (sampling, {"attentive": {"epochs": 5, "losses": [0.9]}, "token_grid": 8}),
        (sampling, {"attentive": {"epochs": 20, "losses": [0.9]}, "token_grid": 4}),
        ({**sampling, "clip_seconds": 4.0}, {"refine": True}),
        ({**sampling, "clip_seconds": 4.0}, {"refine": False}),
    ]
    keys = [results.settings_key(*pair) for pair in others]
    assert len({key, probe_key, *keys}) == len(keys) + 2


ENSEMBLE = {"templates": [f"template {i}: {{}}" for i in range(9)], "template_set": "ensemble",
            "clips": 7}  # fmt: skip


def test_runs_differing_only_in_templates_are_both_kept_and_shown(tmp_path):
    official = _written(tmp_path, "2026-12-07T10:00:00+00:00", metrics={"t2v_R@1": 0.5})
    ensemble = _written(tmp_path, "2026-12-07T11:00:00+00:00", metrics={"t2v_R@1": 0.6},
                        settings=ENSEMBLE)  # fmt: skip
    assert official != ensemble and sorted(tmp_path.iterdir()) == sorted([official, ensemble])
    merged = report.report_of([tmp_path])
    assert [(r.settings, r.ours, r.published) for r in merged.rows] == [
        ("template_set=ensemble; templates=9 items", 60.0, 50.1),
        ("template_set=official; templates=a video of {}.", 50.0, 50.1),
    ]  # fmt: skip
    assert not any("runs; the newest" in note for note in merged.notes)
    lines = merged.markdown().splitlines()
    assert "| template_set=ensemble; templates=9 items | t2v_R@1 | 60.00 % |" in lines[2]
    table = list(csv.DictReader(io.StringIO(merged.csv())))
    assert {r["settings_key"] for r in table} == {
        results.read_record(official)["settings_key"], results.read_record(ensemble)["settings_key"]
    }  # fmt: skip


def test_two_checkpoints_of_one_file_name_are_two_models(tmp_path):
    for key, created in (("aaaaaaaaaaaaaaaa", "10"), ("bbbbbbbbbbbbbbbb", "11")):
        model = results.model_info(f"/runs/{key[0]}/model.npz", "float32", key=key)
        _written(tmp_path, f"2026-12-07T{created}:00:00+00:00", model=model, metrics={"top1": 0.5})
    assert len(list(tmp_path.iterdir())) == 2
    merged = report.report_of([tmp_path])
    assert [(r.model, r.model_key, r.settings) for r in merged.rows] == [
        ("model", "aaaaaaaaaaaaaaaa", "model key=aaaaaaaaaaaaaaaa"),
        ("model", "bbbbbbbbbbbbbbbb", "model key=bbbbbbbbbbbbbbbb"),
    ]


def test_other_sampling_of_a_preset_gets_no_published_number(tmp_path):
    own = _written(tmp_path, "2026-12-07T10:00:00+00:00", metrics={"t2v_R@1": 0.5})
    eight = _written(tmp_path, "2026-12-07T11:00:00+00:00", metrics={"t2v_R@1": 0.4},
                     sampling={"num_frames": 8, "size": 288})  # fmt: skip
    merged = report.report_of([own, eight])
    assert [(r.settings, r.ours, r.published) for r in merged.rows] == [
        ("num_frames=16", 50.0, 50.1), ("num_frames=8", 40.0, None)
    ]  # fmt: skip
    key = results.read_record(eight)["settings_key"]
    assert (
        f"{BASE} · msrvtt-1k-a · retrieval · settings {key}: sampled at 8 frames of 288, "
        "not the preset's own: no published number is set beside it"
    ) in merged.notes
    base = results.model_info(BASE, "float32")
    for sampling in (None, {}, {"num_frames": None, "size": None}, {"num_frames": 16},
                     {"num_frames": 16, "size": [288, 288]}):  # fmt: skip
        assert published.published(base, "msrvtt-1k-a", "retrieval", "t2v_R@1", sampling) == 50.1
    for sampling in ({"num_frames": 8}, {"size": 224}, {"num_frames": 16, "size": [288, 224]}):
        assert published.published(base, "msrvtt-1k-a", "retrieval", "t2v_R@1", sampling) is None


def test_missing_videos_and_their_queries_are_in_the_record_and_the_report(tmp_path):
    dataset = _dataset(missing=3, missing_queries=15)
    path = _written(tmp_path, "2026-12-07T10:00:00+00:00", dataset=dataset)
    record = results.read_record(path)
    assert record["missing"] == ["/data/v0.mp4", "/data/v1.mp4", "/data/v2.mp4"]
    assert record["items"]["missing"] == 3 and record["items"]["missing_queries"] == 15
    merged = report.report_of([path])
    assert "| 7 / 11 | 3 (15 queries) | 1 |" in merged.markdown().splitlines()[2]
    table = list(csv.DictReader(io.StringIO(merged.csv())))
    assert [(r["missing"], r["missing_queries"]) for r in table] == [("3", "15")] * 2
    none = _written(tmp_path / "none", "2026-12-07T10:00:00+00:00", dataset=_dataset())
    assert "| 7 / 10 | 2 | 1 |" in report.report_of([none]).markdown().splitlines()[2]


def test_a_record_written_before_settings_key_and_missing_is_read(tmp_path):
    record = _record()
    for field in ("settings_key", "missing"):
        del record[field]
    del record["items"]["missing_queries"]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(record))
    read = results.read_record(path)
    assert read["settings_key"] == _record()["settings_key"]
    assert read["missing"] == [] and read["items"]["missing_queries"] == 0
    assert len(report.report_of([path]).rows) == 2


def test_charades_sta_note_says_the_published_metric_is_assumed(tmp_path):
    sta = _dataset("charades-sta-test", missing=0)
    path = _written(tmp_path, "2026-12-07T10:00:00+00:00", dataset=sta, task="moments",
                    metrics={"mIoU": 0.47, "R@1_IoU0.5": 0.3}, intervals={})  # fmt: skip
    merged = report.report_of([path])
    assert [(r.metric, r.published) for r in merged.rows] == [("mIoU", 48.6), ("R@1_IoU0.5", None)]
    assert merged.notes[-1] == published.NOTES["charades-sta-test", "moments", "mIoU"]
    assert "assumed to be mIoU" in merged.notes[-1] and "unconfirmed" in merged.notes[-1]
    assert merged.markdown().rstrip().endswith("unconfirmed)")
    other = _written(tmp_path / "other", "2026-12-07T10:00:00+00:00")
    assert not any("mIoU" in note for note in report.report_of([other]).notes)


def test_published_numbers_match_only_the_released_presets():
    base = results.model_info(BASE, "float32")
    assert published.published(base, "msrvtt-1k-a", "retrieval", "v2t_R@1") == 49.8
    assert published.published(base, "csv:ssv2-temporal", "classification", "top1") == 14.6
    assert published.published(base, "charades-sta-test", "moments", "mIoU") == 48.6
    video_l = results.model_info("videoprism_public_v1_large", "float32")
    assert published.published(video_l, "diving48-test", "probe", "attentive_top1") == 67.6
    approximate = results.model_info(BASE, "bfloat16")  # the same weights: still compared
    assert published.published(approximate, "msrvtt-1k-a", "retrieval", "t2v_R@1") == 50.1
    tuned = results.model_info(BASE, "float32", ["run/adapter.lora.npz"])
    assert published.published(tuned, "msrvtt-1k-a", "retrieval", "t2v_R@1") is None
    mine = results.model_info("/models/mine.npz", "float32")
    assert published.published(mine, "msrvtt-1k-a", "retrieval", "t2v_R@1") is None
    assert published.published(base, "msrvtt-1k-a", "retrieval", "t2v_R@5") is None


def test_report_needs_no_keras():
    import subprocess
    import sys

    code = ("import sys; from videoprism_keras.apps.evaluation import report; "
            "from videoprism_keras.cli import evaluate_report; "
            "assert 'keras' not in sys.modules, 'keras imported'")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# ---- the command


def test_cli_report_prints_markdown_and_writes_files(capsys, tmp_path, two_runs):
    out = call(capsys, "eval", "report", tmp_path / "a", two_runs[1])
    assert out.returncode == 0, out.stderr
    assert out.stdout == MARKDOWN
    md, table = tmp_path / "out" / "report.md", tmp_path / "out" / "report.csv"
    out = call(capsys, "eval", "report", tmp_path / "a", tmp_path / "b", "-o", md, "--csv", table)
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"wrote {md} (5 rows)\nwrote {table} (5 rows)\n"
    assert md.read_text() == MARKDOWN
    assert table.read_text() == report.report_of(two_runs).csv()
    out = call(capsys, "eval", "report", *two_runs, "--json")
    rows = json.loads(out.stdout)
    assert [(r["metric"], r["ours"], r["difference"]) for r in rows][:2] == [
        ("t2v_R@1", 51.2, 1.1), ("v2t_R@1", 49.0, -0.8)
    ]  # fmt: skip


def test_cli_report_errors_name_what_is_wrong(capsys, tmp_path, two_runs):
    out = call(capsys, "eval", "report")
    assert out.returncode == 2 and "the following arguments are required: RESULTS" in out.stderr
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    md = tmp_path / "report.md"
    out = call(capsys, "eval", "report", two_runs[0], broken, "-o", md)
    assert out.returncode == 1
    assert out.stderr.startswith(f"videoprism: error: {broken}: expected a result JSON file")
    assert len(out.stderr.splitlines()) == 1 and not md.exists()  # nothing written
    empty = tmp_path / "empty"
    empty.mkdir()
    out = call(capsys, "eval", "report", empty)
    assert out.returncode == 1 and f"{empty}: expected result JSON files" in out.stderr
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    out = call(capsys, "eval", "report", two_runs[0], "--csv", blocked / "report.csv")
    assert out.returncode == 1
    assert out.stderr.startswith(f"videoprism: error: --csv {blocked / 'report.csv'}: ")

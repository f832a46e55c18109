"""`read_dataset` on tiny annotation files written in each benchmark's own format and in the
generic CSV/parquet: the clips, captions, labels, targets and spans exactly, missing videos
listed and counted, bad input named with its file and line. The videos are placeholder
files: reading a dataset only checks that they exist, it never decodes one."""

import json

import pytest

from videoprism_keras.apps.evaluation.datasets import Clip, read_dataset


def touch(folder, *names):
    """Placeholder videos (the adapters never open them)."""
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not decoded")
    return folder


def write(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


# ------------------------------------------------------------------ generic table
def test_csv_captions_group_by_video_and_span(tmp_path):
    touch(tmp_path, "a.mp4", "b.mp4")
    table = write(tmp_path / "mine.csv", "path,caption,start_s,end_s\n"
                  "a.mp4,a dog runs,,\n"
                  "b.mp4,first part,0,2.5\n"
                  "a.mp4,a dog plays,,\n"
                  "b.mp4,second part,2.5,5\n"
                  "gone.mp4,never here,,\n"
                  "b.mp4,the start again,0,2.5\n")  # fmt: skip
    data = read_dataset(table)
    a, b = str(tmp_path / "a.mp4"), str(tmp_path / "b.mp4")
    assert (data.name, data.format, data.task) == ("csv:mine", "csv", "retrieval")
    assert data.annotations == str(table)
    assert data.clips == [Clip(a), Clip(b, 0.0, 2.5), Clip(b, 2.5, 5.0)]
    assert data.captions == ["a dog runs", "first part", "a dog plays", "second part",
                             "the start again"]  # fmt: skip
    assert data.caption_clip == [0, 1, 0, 2, 1]
    assert data.missing == [str(tmp_path / "gone.mp4")]
    assert data.total == 4
    assert data.labels == [] and data.targets == []


def test_csv_accepts_start_end_as_finetune_names_them_and_a_videos_folder(tmp_path):
    videos = touch(tmp_path / "clips", "x.webm")
    table = write(tmp_path / "notes" / "pairs.csv", "\ufeffpath,caption,start,end\n"
                  "x,hello,1,2\n")  # fmt: skip
    data = read_dataset(table, videos=videos)
    assert data.clips == [Clip(str(videos / "x.webm"), 1.0, 2.0)]
    assert data.clips[0].key == f"{videos / 'x.webm'}#t=1.0,2.0"


def test_csv_labels_single_and_multi_label(tmp_path):
    touch(tmp_path, "1.mp4", "2.mp4", "3.mp4")
    single = write(tmp_path / "single.csv", "path,label\n1.mp4,dog\n2.mp4,cat\n3.mp4,dog\n")
    data = read_dataset(single)
    assert (data.task, data.labels, data.multi_label) == ("classification", ["cat", "dog"], False)
    assert data.targets == [(1,), (0,), (1,)]
    multi = write(tmp_path / "multi.csv", "path,label\n1.mp4,dog; ball\n2.mp4,cat\n"
                  "2.mp4,sofa\n4.mp4,dog\n")  # fmt: skip
    data = read_dataset(multi)
    assert data.labels == ["ball", "cat", "dog", "sofa"] and data.multi_label
    assert data.targets == [(0, 2), (1, 3)]
    assert data.missing == [str(tmp_path / "4.mp4")] and data.total == 3


def test_parquet_reads_like_the_csv_and_split_filters(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    touch(tmp_path, "a.mp4", "b.mp4")
    rows = {"path": ["a.mp4", "b.mp4", "a.mp4"], "label": ["x", "y", "z"],
            "split": ["train", "val", "val"]}  # fmt: skip
    pq.write_table(pa.table(rows), tmp_path / "labels.parquet")
    data = read_dataset(tmp_path / "labels.parquet", split="val")
    assert data.clips == [Clip(str(tmp_path / "b.mp4")), Clip(str(tmp_path / "a.mp4"))]
    assert data.labels == ["y", "z"] and data.targets == [(0,), (1,)]
    spans = {"path": ["a.mp4", "a.mp4"], "caption": ["one", "two"], "start_s": [None, 1.0],
             "end_s": [None, 3.0]}  # fmt: skip
    pq.write_table(pa.table(spans), tmp_path / "spans.parquet")
    data = read_dataset(tmp_path / "spans.parquet")
    a = str(tmp_path / "a.mp4")
    assert data.clips == [Clip(a), Clip(a, 1.0, 3.0)] and data.caption_clip == [0, 1]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("path,text\na.mp4,hi\n", "expected columns path,caption"),
        ("path,caption,label\na.mp4,hi,x\n", "expected columns path,caption"),
        ("path,caption,start_s,end_s\na.mp4,hi,zero,2\n", "line 2: start_s must be seconds"),
        ("path,caption,start_s,end_s\na.mp4,hi,3,2\n", "line 2: needs start_s < end_s"),
        ("path,caption,start_s,end_s\na.mp4,hi,3,\n", "line 2: start_s and end_s must both"),
        ("path,caption\na.mp4,hi\na.mp4,\n", "line 3: caption is empty"),
        ("path,label\na.mp4, ; \n", "line 2: label holds no class name"),
        ("", "no rows"),
        ("path,caption\n", "no rows"),
    ],
)
def test_bad_tables_are_named_with_file_line_and_expectation(tmp_path, content, expected):
    touch(tmp_path, "a.mp4")
    table = write(tmp_path / "bad.csv", content)
    with pytest.raises(ValueError, match=expected) as caught:
        read_dataset(table)
    assert str(table) in str(caught.value)


def test_no_video_found_names_the_folder(tmp_path):
    table = write(tmp_path / "t.csv", "path,caption\nnone.mp4,hi\n")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="none of the 1 videos") as caught:
        read_dataset(table, videos=tmp_path / "empty")
    assert str(tmp_path / "empty") in str(caught.value)


def test_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="no such annotation file"):
        read_dataset(tmp_path / "absent.csv")
    table = write(tmp_path / "t.csv", "path,caption\na.mp4,hi\n")
    with pytest.raises(ValueError, match="format: expected one of csv, msrvtt"):
        read_dataset(table, format="webvid")
    with pytest.raises(ValueError, match="videos: no such folder"):
        read_dataset(table, videos=tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no split column"):
        read_dataset(table, split="val")


# ------------------------------------------------------------------------ MSR-VTT
MSRVTT = """key,vid_key,video_id,sentence
ret0,msr7020,video7020,a woman creating a fondant baby and flower
ret1,msr7021,video7021,a little girl does gymnastics
ret2,msr7010,video7010,a man is talking about a car
ret3,msr7011,video7011,people are dancing on a stage
"""


def test_msrvtt_one_caption_per_video_inferred_from_the_file_name(tmp_path):
    videos = touch(tmp_path / "all", "video7020.mp4", "video7010.mp4", "video7011.webm")
    data = read_dataset(write(tmp_path / "MSRVTT_JSFUSION_test.csv", MSRVTT), videos=videos)
    assert (data.name, data.format, data.task) == ("msrvtt-1k-a", "msrvtt", "retrieval")
    names = ("video7020.mp4", "video7010.mp4", "video7011.webm")
    assert [c.path for c in data.clips] == [str(videos / n) for n in names]
    assert data.captions == [
        "a woman creating a fondant baby and flower",
        "a man is talking about a car",
        "people are dancing on a stage",
    ]
    assert data.caption_clip == [0, 1, 2]
    assert data.missing == [str(videos / "video7021.*")] and data.total == 4
    assert "one caption" in data.protocol


def test_msrvtt_without_its_columns_is_named(tmp_path):
    table = write(tmp_path / "MSRVTT_JSFUSION_test.csv", "key,video,sentence\nr,v,s\n")
    with pytest.raises(ValueError, match="expected columns video_id,sentence"):
        read_dataset(table)

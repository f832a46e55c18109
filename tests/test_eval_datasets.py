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
                  "gone.mp4,nor here,,\n"
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
    assert data.total == 4 and data.missing_queries == 2  # gone.mp4's two captions
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
    assert data.missing_queries == 0  # labels are not queries: nothing goes unasked


def test_parquet_reads_like_the_csv_and_split_filters(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    touch(tmp_path, "a.mp4", "b.mp4")
    rows = {"path": ["a.mp4", "b.mp4", "a.mp4"], "label": ["x", "y", "z"],
            "split": ["train", "val", "val"]}  # fmt: skip
    pq.write_table(pa.table(rows), tmp_path / "labels.parquet")
    data = read_dataset(tmp_path / "labels.parquet", split="val")
    assert data.clips == [Clip(str(tmp_path / "b.mp4")), Clip(str(tmp_path / "a.mp4"))]
    # The classes are the whole file's: train and val of one file index them alike.
    assert data.labels == ["x", "y", "z"] and data.targets == [(1,), (2,)]
    assert read_dataset(tmp_path / "labels.parquet", split="train").targets == [(0,)]
    with pytest.raises(ValueError, match="holds splits train, val; choose one"):
        read_dataset(tmp_path / "labels.parquet")
    spans = {"path": ["a.mp4", "a.mp4"], "caption": ["one", "two"], "start_s": [None, 1.0],
             "end_s": [None, 3.0]}  # fmt: skip
    pq.write_table(pa.table(spans), tmp_path / "spans.parquet")
    data = read_dataset(tmp_path / "spans.parquet")
    a = str(tmp_path / "a.mp4")
    assert data.clips == [Clip(a), Clip(a, 1.0, 3.0)] and data.caption_clip == [0, 1]
    spans["end_s"] = [None, -3.0]
    pq.write_table(pa.table(spans), tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match=r"bad\.parquet, row 2: end_s must be seconds >= 0"):
        read_dataset(tmp_path / "bad.parquet")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 but not really")
    with pytest.raises(ValueError, match=r"broken\.parquet: not a readable parquet file"):
        read_dataset(tmp_path / "broken.parquet")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("path,text\na.mp4,hi\n", "expected columns path,caption"),
        ("path,caption,label\na.mp4,hi,x\n", "expected columns path,caption"),
        ("path,caption,start_s,end_s\na.mp4,hi,zero,2\n", "line 2: start_s must be seconds"),
        ("path,caption,start_s,end_s\na.mp4,hi,3,2\n", "line 2: needs start_s < end_s"),
        ("path,caption,start_s,end_s\na.mp4,hi,3,\n", "line 2: start_s and end_s must both"),
        ("path,caption\na.mp4,hi\n\na.mp4,\n", "line 4: caption is empty"),
        ('path,caption\na.mp4,"two\nlines"\nb.mp4,\n', "line 4: caption is empty"),
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


def test_a_csv_that_is_not_utf8_is_named(tmp_path):
    table = tmp_path / "latin.csv"
    table.write_bytes("path,caption\na.mp4,café\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin\.csv: not a readable UTF-8 CSV file"):
        read_dataset(table)


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
    assert data.missing_queries == 1
    assert "one caption" in data.protocol


def test_msrvtt_without_its_columns_is_named(tmp_path):
    table = write(tmp_path / "MSRVTT_JSFUSION_test.csv", "key,video,sentence\nr,v,s\n")
    with pytest.raises(ValueError, match="expected columns video_id,sentence"):
        read_dataset(table)


# -------------------------------------------------------------------------- VATEX
def _vatex_entry(video, n=10):
    return {"videoID": video, "enCap": [f"{video} english {i}" for i in range(n)],
            "chCap": [f"{video} 中文 {i}" for i in range(n)]}  # fmt: skip


def test_vatex_every_caption_is_a_query_and_the_test_list_selects(tmp_path):
    ids = ["Ptf_2VRj-V0_000122_000132", "--33Lscn6sk_000004_000014", "0AcC8xlRbsw_000030_000040",
           "zzz-missing_000001_000011"]  # fmt: skip
    notes = write(tmp_path / "vatex_validation_v1.0.json", [_vatex_entry(v) for v in ids])
    write(tmp_path / "test_list.txt", f"{ids[3]}\n{ids[0]}\n\n{ids[2]}\n")
    videos = touch(tmp_path / "val", f"{ids[0]}.mp4", f"{ids[1]}.mp4", f"{ids[2]}.mkv")
    data = read_dataset(notes, videos=videos, split="test")
    assert (data.name, data.format, data.task) == ("vatex-test", "vatex", "retrieval")
    assert data.clips == [Clip(str(videos / f"{ids[0]}.mp4")), Clip(str(videos / f"{ids[2]}.mkv"))]
    assert data.captions == [f"{ids[0]} english {i}" for i in range(10)] + [
        f"{ids[2]} english {i}" for i in range(10)]  # fmt: skip
    assert data.caption_clip == [0] * 10 + [1] * 10
    assert data.missing == [str(videos / f"{ids[3]}.*")] and data.total == 3
    assert data.missing_queries == 10  # the missing video's ten English captions
    whole = read_dataset(notes, videos=videos)  # no list: every video of the file
    assert whole.name == "vatex-val" and whole.total == 4 and len(whole.clips) == 3
    assert whole.missing_queries == 10


def test_vatex_reads_the_dict_form_and_names_bad_entries(tmp_path):
    touch(tmp_path, "a_000001_000011.mp4")
    notes = write(tmp_path / "vatex_data.json", {"a_000001_000011": {"enCap": ["one", "two"]}})
    data = read_dataset(notes)
    assert data.captions == ["one", "two"] and data.caption_clip == [0, 0]
    bad = write(tmp_path / "vatex_bad.json", [_vatex_entry("a_000001_000011"), {"videoID": "b"}])
    with pytest.raises(ValueError, match=r"vatex_bad.json, entry 2: enCap must be a non-empty"):
        read_dataset(bad)
    write(tmp_path / "test_list.txt", "nope_1_2\n")
    with pytest.raises(ValueError, match="videoIDs are not in"):
        read_dataset(notes, split=str(tmp_path / "test_list.txt"))
    with pytest.raises(ValueError, match="split: expected a file listing VATEX videoIDs"):
        read_dataset(notes, split="private")


# ------------------------------------------------------------ ActivityNet Captions
ACTIVITYNET = {
    "v_QOlSCBRmfWY": {"duration": 82.73, "timestamps": [[0.83, 19.86], [17.37, 60.81]],
                      "sentences": ["A young woman is seen standing in a room.",
                                    " She then begins to dance around. "]},
    "v_ehGHCYKzyZ8": {"duration": 61.72, "timestamps": [[0, 14.2]],
                      "sentences": ["A man is riding a bike."]},
    "v_nwznKOuZM7w": {"duration": 30.0, "timestamps": [[1, 2]], "sentences": ["Gone."]},
    "v_ogQozSI5V8U": {"duration": 20.0, "timestamps": [[3, 9], [9, 12]],
                      "sentences": ["People row a boat.", "They reach the shore."]},
}  # fmt: skip


def test_activitynet_one_paragraph_per_whole_video(tmp_path):
    videos = touch(tmp_path / "videos", "v_QOlSCBRmfWY.mp4", "ehGHCYKzyZ8.webm",
                   "v_ogQozSI5V8U.mkv")  # fmt: skip
    data = read_dataset(write(tmp_path / "val_1.json", ACTIVITYNET), videos=videos)
    assert (data.name, data.format, data.task) == ("activitynet-val1", "activitynet", "retrieval")
    assert data.clips == [Clip(str(videos / "v_QOlSCBRmfWY.mp4")),
                          Clip(str(videos / "ehGHCYKzyZ8.webm")),
                          Clip(str(videos / "v_ogQozSI5V8U.mkv"))]  # fmt: skip
    assert data.captions == [
        "A young woman is seen standing in a room. She then begins to dance around.",
        "A man is riding a bike.",
        "People row a boat. They reach the shore.",
    ]
    assert data.caption_clip == [0, 1, 2]
    assert data.missing == [str(videos / "v_nwznKOuZM7w.*")] and data.total == 4
    assert data.missing_queries == 1  # its one paragraph
    assert "whole video" in data.protocol


def test_activitynet_without_sentences_is_named(tmp_path):
    notes = write(tmp_path / "val_1.json", {"v_x": {"duration": 3, "timestamps": []}})
    with pytest.raises(ValueError, match=r"val_1\.json, video v_x: sentences must be"):
        read_dataset(notes)


# ----------------------------------------------------------------------- Kinetics
KINETICS = """label,youtube_id,time_start,time_end,split,is_cc
abseiling,0wR5jVB-WPk,417,427,val,0
air drumming,--nQbRBEz2s,104,114,val,0
zumba,zzzMissing1,7,17,val,0
abseiling,trainOnly01,0,10,train,0
zumba,-0BfBIuVJZE,12,22,val,1
"""


def test_kinetics_clips_by_label_folder_or_flat_and_class_list_over_all_splits(tmp_path):
    videos = touch(tmp_path / "val", "abseiling/0wR5jVB-WPk_000417_000427.mp4",
                   "air_drumming/--nQbRBEz2s_000104_000114.webm",
                   "-0BfBIuVJZE_000012_000022.mkv", "trainOnly01_000000_000010.mp4")  # fmt: skip
    notes = write(tmp_path / "kinetics_400_val.csv", KINETICS)
    data = read_dataset(notes, videos=videos, split="validate")
    assert (data.name, data.format, data.task) == ("kinetics-400-val", "kinetics", "classification")
    assert data.clips == [Clip(str(videos / "abseiling/0wR5jVB-WPk_000417_000427.mp4")),
                          Clip(str(videos / "air_drumming/--nQbRBEz2s_000104_000114.webm")),
                          Clip(str(videos / "-0BfBIuVJZE_000012_000022.mkv"))]  # fmt: skip
    assert data.labels == ["abseiling", "air drumming", "zumba"] and not data.multi_label
    assert data.targets == [(0,), (1,), (2,)]
    assert data.missing == [str(videos / "zumba/zzzMissing1_000007_000017.*")]
    assert data.total == 4 and data.missing_queries == 0
    train = read_dataset(notes, videos=videos, split="train")
    assert train.labels == data.labels and train.targets == [(0,)]
    with pytest.raises(ValueError, match="holds splits val, train; choose one"):
        read_dataset(notes, videos=videos)
    with pytest.raises(ValueError, match="no row has split 'test'"):
        read_dataset(notes, videos=videos, split="test")


def test_kinetics_bad_time_is_named_with_its_line(tmp_path):
    notes = write(tmp_path / "kinetics600_val.csv", KINETICS.replace("104,114", "104,soon"))
    with pytest.raises(ValueError, match=r"kinetics600_val\.csv, line 3: time_end must be seconds"):
        read_dataset(notes, split="val")


# ------------------------------------------------------------ Something-Something v2
SSV2_LABELS = {"Approaching something with your camera": "0",
               "Putting something into something": "1",
               "Spinning something that quickly stops spinning": "2"}  # fmt: skip
SSV2 = [
    {"id": "74225", "label": "spinning cube that quickly stops spinning",
     "template": "Spinning [something] that quickly stops spinning", "placeholders": ["cube"]},
    {"id": "116154", "label": "putting a pen into a cup",
     "template": "Putting [something] into [something]", "placeholders": ["a pen", "a cup"]},
    {"id": "198186", "label": "approaching a door with your camera",
     "template": "Approaching [something] with your camera", "placeholders": ["a door"]},
]  # fmt: skip


def test_ssv2_labels_are_templates_without_brackets(tmp_path):
    write(tmp_path / "something-something-v2-labels.json", SSV2_LABELS)
    notes = write(tmp_path / "something-something-v2-validation.json", SSV2)
    videos = touch(tmp_path / "videos", "74225.webm", "198186.webm")
    data = read_dataset(notes, videos=videos)
    assert (data.name, data.format, data.task) == ("ssv2-val", "ssv2", "classification")
    assert data.labels == list(SSV2_LABELS)
    assert data.clips == [Clip(str(videos / "74225.webm")), Clip(str(videos / "198186.webm"))]
    assert data.targets == [(2,), (0,)]
    assert data.missing == [str(videos / "116154.*")] and data.total == 3
    assert data.missing_queries == 0


def test_ssv2_unknown_template_and_absent_class_list_are_named(tmp_path):
    notes = write(tmp_path / "something-something-v2-validation.json", SSV2)
    with pytest.raises(ValueError, match="expected the class list something-something-v2-labels"):
        read_dataset(notes)
    write(tmp_path / "something-something-v2-labels.json", dict(list(SSV2_LABELS.items())[:2]))
    with pytest.raises(ValueError, match="entry 1: class 'Spinning something that quickly"):
        read_dataset(notes)


# ---------------------------------------------------------------------- Charades
CHARADES_CLASSES = """c000 Holding some clothes
c001 Putting clothes somewhere
c092 Someone is laughing
c147 Sitting in a chair
"""
CHARADES = """id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length
YSKX3,HR43,Kitchen,6,7,Yes,A person laughs.,chair,A person sits and laughs.,c092 11.90 21.20;c147 0.00 12.60,31.5
6H78U,QAU2,Bedroom,5,7,Yes,A person holds clothes.,clothes,Holding.,c000 0.00 5.00,12.0
EMPTY,QAU2,Hallway,5,7,Yes,Nothing.,,Nothing happens.,,10.0
GONE1,QAU2,Hallway,5,7,Yes,Gone.,,Gone.,c001 1.0 2.0,10.0
"""  # noqa: E501


def test_charades_multi_label_over_whole_videos(tmp_path):
    write(tmp_path / "Charades_v1_classes.txt", CHARADES_CLASSES)
    notes = write(tmp_path / "Charades_v1_test.csv", CHARADES)
    videos = touch(tmp_path / "Charades_v1_480", "YSKX3.mp4", "6H78U.mp4", "EMPTY.mp4")
    data = read_dataset(notes, videos=videos)
    assert (data.name, data.format, data.task) == ("charades-test", "charades", "classification")
    assert data.labels == ["Holding some clothes", "Putting clothes somewhere",
                           "Someone is laughing", "Sitting in a chair"]  # fmt: skip
    assert data.multi_label
    assert [c.path for c in data.clips] == [str(videos / f"{v}.mp4") for v in
                                            ("YSKX3", "6H78U", "EMPTY")]  # fmt: skip
    assert all(c.start_s is None for c in data.clips)
    assert data.targets == [(2, 3), (0,), ()]
    assert data.missing == [str(videos / "GONE1.*")] and data.total == 4
    assert data.missing_queries == 0


def test_charades_unknown_class_is_named_with_its_line(tmp_path):
    write(tmp_path / "Charades_v1_classes.txt", CHARADES_CLASSES)
    notes = write(tmp_path / "Charades_v1_test.csv", CHARADES.replace("c000 0.00", "c999 0.00"))
    with pytest.raises(ValueError, match=r"Charades_v1_test\.csv, line 3: class 'c999' is not in"):
        read_dataset(notes)


# ------------------------------------------------------------------- Charades-STA
CHARADES_STA = """3MSZA 24.3 30.4##person turn a light on.
3MSZA 0.0 6.9##a person is walking into a room.
AO8RW 0.0 6.7##a person is putting a book on a shelf.
GONE1 1.0 4.0##nobody is here.
GONE1 5.0 8.0##still nobody.
0IH69 12.5 21.1##a person opens a door.
"""


def test_charades_sta_queries_ask_whole_videos(tmp_path):
    notes = write(tmp_path / "charades_sta_test.txt", CHARADES_STA)
    videos = touch(tmp_path / "Charades_v1_480", "3MSZA.mp4", "AO8RW.mp4", "0IH69.mp4")
    data = read_dataset(notes, videos=videos)
    assert (data.name, data.format, data.task) == ("charades-sta-test", "charades-sta", "moments")
    assert data.clips == [Clip(str(videos / f"{v}.mp4")) for v in ("3MSZA", "AO8RW", "0IH69")]
    assert data.queries == [
        "person turn a light on.",
        "a person is walking into a room.",
        "a person is putting a book on a shelf.",
        "a person opens a door.",
    ]
    assert data.query_clip == [0, 0, 1, 2]
    assert data.spans == [(24.3, 30.4), (0.0, 6.9), (0.0, 6.7), (12.5, 21.1)]
    assert data.missing == [str(videos / "GONE1.*")] and data.total == 4
    assert data.missing_queries == 2  # GONE1's two moments, not asked
    assert data.captions == [] and data.labels == []


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("3MSZA 24.3 30.4 person turn a light on.", "line 2: expected"),
        ("3MSZA 30.4 24.3##reversed.", "line 2: needs start < end"),
        ("3MSZA x 24.3##bad.", "line 2: start must be seconds"),
    ],
)
def test_charades_sta_bad_lines_are_named(tmp_path, line, expected):
    notes = write(tmp_path / "charades_sta_test.txt", f"AO8RW 0.0 6.7##fine.\n{line}\n")
    with pytest.raises(ValueError, match=expected):
        read_dataset(notes)


def test_format_is_inferred_only_where_the_name_says(tmp_path):
    from videoprism_keras.apps.evaluation.adapters import infer_format

    assert [infer_format(n) for n in (
        "MSRVTT_JSFUSION_test.csv", "vatex_public_test_english_v1.1.json", "val_1.json",
        "kinetics_400_val.csv", "something-something-v2-validation.json",
        "Charades_v1_test.csv", "charades_sta_test.txt", "validate.csv", "mine.parquet",
    )] == ["msrvtt", "vatex", "activitynet", "kinetics", "ssv2", "charades", "charades-sta",
           "csv", "csv"]  # fmt: skip


def test_a_format_taken_from_the_file_name_is_said_when_the_file_does_not_fit(tmp_path):
    touch(tmp_path, "a.mp4")
    table = write(tmp_path / "kinetics_subset.csv", "path,label\na.mp4,dancing\n")
    with pytest.raises(ValueError, match="format='kinetics' was taken from the file name"):
        read_dataset(table)
    assert read_dataset(table, format="csv").labels == ["dancing"]


def test_a_format_from_the_file_name_is_not_blamed_when_the_file_is_that_benchmarks(tmp_path):
    # A real Kinetics file with a bad line: the line is the error, not the format.
    notes = write(tmp_path / "kinetics_400_val.csv", KINETICS.replace("104,114", "104,soon"))
    with pytest.raises(ValueError, match="line 3: time_end must be seconds") as caught:
        read_dataset(notes, split="val")
    assert "format=" not in str(caught.value)


def test_deepmind_kinetics_csv_read_as_generic_suggests_the_kinetics_format(tmp_path):
    # DeepMind names its files validate.csv / train.csv: nothing in the name to go by.
    notes = write(tmp_path / "validate.csv", KINETICS)
    with pytest.raises(ValueError, match="a Kinetics file: format='kinetics' reads it"):
        read_dataset(notes)
    mine = write(tmp_path / "mine.csv", "path,text\na.mp4,hi\n")
    with pytest.raises(ValueError, match="expected columns") as caught:
        read_dataset(mine)
    assert "format=" not in str(caught.value)


def test_a_split_for_a_one_split_file_is_refused_by_name(tmp_path):
    notes = write(tmp_path / "MSRVTT_JSFUSION_test.csv", MSRVTT)
    with pytest.raises(ValueError, match=r"holds one split; expected no split\. Received: "
                       r"split='val'"):  # fmt: skip
        read_dataset(notes, split="val")

"""The index on object storage, against a real S3 API on loopback (moto's server,
tests/s3.py): indexing and searching `s3://` as a user would, the `id` primary key that
makes a concurrent insert of the same clip conflict instead of storing it twice, and the
errors of a wrong bucket, wrong credentials or an endpoint that is down."""

import json
import socket
import time

import numpy as np
import pytest
from cli_helpers import call, run_all


def _rows(n, start=0):
    from videoprism_keras.apps.identity import VideoFile
    from videoprism_keras.apps.index import store

    files = [VideoFile(f"/videos/v{i}.mp4", 100, 1) for i in range(start, start + n)]
    vectors = store.normalise(np.random.default_rng(start).normal(size=(n, 8)))
    return store.clip_table(files, [None] * n, [None] * n, vectors, [True] * n)


def test_two_commits_inserting_one_clip_store_it_once(s3_server):
    import lancedb

    from videoprism_keras.apps.index import store
    from videoprism_keras.apps.index.table import ClipTable

    uri = f"s3://{s3_server.bucket()}/ix"
    index = ClipTable(uri, storage_options=s3_server.options())
    index.commit(_rows(2))
    assert index.meta["dim"] == 8
    # Two writers that read the same version, as on two machines: both insert clip 2.
    db = lancedb.connect(uri, storage_options=s3_server.options())
    first, second = db.open_table(store.TABLE), db.open_table(store.TABLE)
    clip = _rows(1, start=2).replace_schema_metadata(first.schema.metadata)
    done = first.merge_insert("id").when_not_matched_insert_all().execute(clip)
    assert (done.num_inserted_rows, done.num_attempts) == (1, 1)
    late = second.merge_insert("id").when_not_matched_insert_all().execute(clip)
    # The later commit conflicted on the key, was retried on the new version, and found
    # the clip there.
    assert late.num_attempts > 1 and late.num_inserted_rows == 0
    ids = ClipTable(uri, storage_options=s3_server.options(), create=False).to_arrow()["id"]
    assert len(ids) == 3 and len(set(ids.to_pylist())) == 3


def test_index_and_search_on_s3_by_flags_and_by_environment(s3_server, env, lvt, videos):
    model, tok = lvt
    bucket = s3_server.bucket()
    uri = f"s3://{bucket}/ix"
    added, again, found = run_all(
        env,
        ["index", videos, "-o", uri, "--clip-seconds", "1", "--json", *s3_server.flags(),
         *model, *tok],
        ["index", videos, "-o", uri, "--clip-seconds", "1", "--json", *s3_server.flags(),
         *model],
        ["search", uri, "--text", "a video", "--json", *s3_server.flags(), *model],
    )  # fmt: skip
    assert json.loads(added.stdout)["size"] == 3 + 4 + 5  # 3, 4 and 5 s videos in 1 s windows
    assert json.loads(again.stdout)["added"] == 0 and json.loads(again.stdout)["skipped"] == 12
    hits = json.loads(found.stdout)
    assert len(hits) == 5 and all(h["path"].startswith(str(videos)) for h in hits)
    assert any(key.startswith("ix/clips.lance/_versions/") for key in s3_server.keys(bucket))
    # Moments and copies read the same s3:// index (moments refine from the local files).
    moments, copies = run_all(
        env,
        ["moments", uri, "--video", videos / "gen2.mp4", "--top-k", "2", "--json",
         *s3_server.flags(), *model],
        ["copies", uri, "--json", *s3_server.flags()],
    )  # fmt: skip
    found_moments = json.loads(moments.stdout)
    assert 1 <= len(found_moments) <= 2
    for moment in found_moments:
        assert set(moment) == {"path", "start_s", "end_s", "score"}
        assert moment["path"].startswith(str(videos)) and moment["end_s"] > moment["start_s"]
    assert isinstance(json.loads(copies.stdout), list)
    # The same index through the environment only (the AWS variables), no flags.
    (by_env,) = run_all(
        {**env, **s3_server.environment()},
        ["search", uri, "--text", "a video", "--json", *model],
    )
    assert json.loads(by_env.stdout) == hits


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("fault", ["bucket", "secret", "endpoint"])
def test_a_wrong_bucket_credentials_or_endpoint_is_one_line_in_seconds(s3_server, fault, lvt,
                                                                       capsys):  # fmt: skip
    model, _ = lvt
    bucket = s3_server.bucket()
    changed = {"secret": {"aws_secret_access_key": "wrong"},
               "endpoint": {"aws_endpoint": f"http://127.0.0.1:{_free_port()}"}}  # fmt: skip
    flags = s3_server.flags(**changed.get(fault, {}))
    uri = f"s3://{'no-such-bucket' if fault == 'bucket' else bucket}/ix"
    reason = {"bucket": "the bucket does not exist", "secret": "the credentials were refused",
              "endpoint": "the endpoint does not answer"}[fault]  # fmt: skip
    for command in (["search", uri, "--text", "a cat"], ["index", "nothing.mp4", "-o", uri]):
        began = time.monotonic()
        out = call(capsys, *command, *flags, *model)
        took = time.monotonic() - began
        assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
        assert (
            out.stderr.startswith("videoprism: error: cannot reach the index") and uri in out.stderr
        )
        assert reason in out.stderr and "nothing was written" in out.stderr
        assert "Traceback" not in out.stderr and took < 30, (took, out.stderr)
    assert s3_server.keys(bucket) == []  # nothing written


def test_a_reader_sees_another_writers_commit_at_its_next_search(s3_server):
    from videoprism_keras.apps import VideoIndex

    uri = f"s3://{s3_server.bucket()}/ix"
    writer = VideoIndex(uri, storage_options=s3_server.options())
    writer.commit(_rows(2))
    # refresh_seconds=0: every search looks for a new version (tests/test_object_store_serve.py
    # has the default, a look every few seconds).
    reader = VideoIndex.load(uri, storage_options=s3_server.options(), in_memory=True,
                             refresh_seconds=0)  # fmt: skip
    query = _rows(1, start=5)["vector"].to_numpy(zero_copy_only=False)[0]
    assert len(reader.search(query, top_k=10)[0]) == 2
    # Another handle (another process's, as far as the store is concerned) commits.
    VideoIndex(uri, storage_options=s3_server.options()).commit(_rows(1, start=5))
    hits = reader.search(query, top_k=10)[0]  # every search reads the latest version
    assert len(hits) == 3 and hits[0].path == "/videos/v5.mp4"


def test_a_failed_commit_says_earlier_commits_stay_and_a_bare_timeout_is_no_endpoint():
    from videoprism_keras.apps.index import store

    down = OSError("Generic S3 error: error sending request for url (http://127.0.0.1:9/b)")
    opening = str(store.translate(down, "s3://b/ix", "opening it"))
    assert "the endpoint does not answer; nothing was written" in opening
    commit = str(store.translate(down, "s3://b/ix", "writing to it", committing=True))
    assert "this commit was not made; earlier commits stay" in commit
    assert "nothing was written" not in commit
    # A lock's or a commit's timeout on a store that answers is not an unreachable endpoint.
    conflict = RuntimeError("Commit conflict: Timeout waiting for the lock")
    assert "does not answer" not in str(store.translate(conflict, "s3://b/ix", "writing to it"))

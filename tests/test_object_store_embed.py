"""`videoprism embed -o s3://…` against a real S3 API on loopback (moto's server,
tests/s3.py): the output equals a local run's (.npz, .npy + .json, .parquet; credentials by
flags and by the environment), a run stopped after some batches leaves whole parts that
`--resume` continues (each item once), an upload that fails or a writer killed while
uploading leaves no object half written and an earlier output whole (and resumes), and a
wrong bucket, credentials or endpoint is one line naming -o before the model loads,
nothing written."""

import io
import json
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from cli_helpers import call

from videoprism_keras.apps import Embeddings
from videoprism_keras.apps.embed_writer import EmbeddingWriter


@pytest.fixture(scope="module")
def model_flags(golden_dir):
    return ["--preset", golden_dir / "lvt_small.ckpt.npz", "--soft-cap", "5", "--num-frames",
            "4", "--size", "16", "--no-progress", "--batch-size", "2"]  # fmt: skip


def _download(server, bucket, key, folder):
    """The object (and an .npy's sidecar) as local files, read back with `Embeddings.load`."""
    client = server.client()
    for name in (key, key.rsplit(".", 1)[0] + ".json") if key.endswith(".npy") else (key,):
        (folder / name).write_bytes(client.get_object(Bucket=bucket, Key=name)["Body"].read())
    return Embeddings.load(folder / key)


def _same(got: Embeddings, want: Embeddings):
    np.testing.assert_allclose(got.vectors, want.vectors, rtol=0, atol=1e-6)
    assert list(got.paths) == list(want.paths) and got.kind == want.kind
    np.testing.assert_array_equal(got.start_s, want.start_s)
    np.testing.assert_array_equal(got.end_s, want.end_s)


def _batches(n=10, dim=16):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    paths = [f"v{i // 2}.mp4" for i in range(n)]
    starts = np.arange(float(n)) % 2
    return [Embeddings(vectors[i : i + 3], paths[i : i + 3], starts[i : i + 3],
                       starts[i : i + 3] + 1) for i in range(0, n, 3)]  # fmt: skip


@pytest.mark.parametrize("suffix", [".npz", ".npy", ".parquet"])
def test_an_object_store_writer_keeps_whole_parts_resumes_and_ends_with_one_object(
    s3_server, suffix, tmp_path
):
    bucket, settings = s3_server.bucket(), {"--kind": "video", "--frames": 4}
    uri, options = f"s3://{bucket}/sub/e{suffix}", s3_server.options()
    batches = _batches()
    writer = EmbeddingWriter(uri, settings, storage_options=options)
    for batch in batches[:2]:  # then the process dies: parts in the store, no output
        writer.write(batch)
    assert writer.path == uri and writer.parts == f"{uri}.partial"
    # Each part went up under a temporary name, then was copied; deleting the temporary
    # object, pyarrow marks the folder ("…partial/": an empty object, no part).
    assert sorted(s3_server.keys(bucket)) == [f"sub/e{suffix}.partial/{name}" for name in
                                              ("", "manifest.json", "part-000000.npz",
                                               "part-000001.npz")]  # fmt: skip
    with pytest.raises(ValueError, match="--num-frames 4, not 8"):
        EmbeddingWriter(uri, {**settings, "--frames": 8}, resume=True, storage_options=options)
    resumed = EmbeddingWriter(uri, settings, resume=True, storage_options=options)
    assert resumed.resumed == 6 and resumed.done("v0.mp4", 0.0, 1.0)
    for batch in batches[2:]:
        resumed.write(batch)
    assert resumed.finish("video") == (uri, (10, 16))
    sidecar = ["sub/e.json"] if suffix == ".npy" else []
    # The parts are gone; pyarrow marks the folder the deleted ones were in ("sub/": an empty
    # object, as the S3 console makes for a folder).
    assert sorted(s3_server.keys(bucket)) == sorted(["sub/", f"sub/e{suffix}", *sidecar])
    local = EmbeddingWriter(tmp_path / f"e{suffix}", settings)
    for batch in batches:
        local.write(batch)
    path, _ = local.finish("video")
    (tmp_path / "down" / "sub").mkdir(parents=True)
    _same(_download(s3_server, bucket, f"sub/e{suffix}", tmp_path / "down"), Embeddings.load(path))
    # A finished output is continued too (with new items), and read back through the store.
    more = EmbeddingWriter(uri, settings, resume=True, storage_options=options)
    assert more.resumed == 10


def test_an_upload_that_fails_midway_keeps_the_earlier_output_and_leaves_nothing_truncated(
    s3_server, monkeypatch
):
    bucket, settings, options = s3_server.bucket(), {"--kind": "video"}, s3_server.options()
    uri, client = f"s3://{bucket}/e.npz", s3_server.client()
    batches = _batches()
    first = EmbeddingWriter(uri, settings, storage_options=options)
    first.write(batches[0])
    first.finish("video")
    earlier = client.get_object(Bucket=bucket, Key="e.npz")["Body"].read()
    writer = EmbeddingWriter(uri, settings, storage_options=options)  # a run that replaces it
    for batch in batches:
        writer.write(batch)
    calls = []

    def failing(f, parts, shape):  # the vectors' stream breaks after its header
        calls.append(shape)
        f.write(b"\x93NUMPY")
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr("videoprism_keras.apps.embed_writer._stream_npy", failing)
        with pytest.raises(KeyboardInterrupt):
            writer.finish("video")
    keys = s3_server.keys(bucket)
    assert calls and not [k for k in keys if ".tmp-" in k]  # no half archive under any name
    assert client.get_object(Bucket=bucket, Key="e.npz")["Body"].read() == earlier  # whole
    parts = sorted(k for k in keys if "/part-" in k)  # kept, each whole
    bodies = [client.get_object(Bucket=bucket, Key=key)["Body"].read() for key in parts]
    assert [len(np.load(io.BytesIO(body))["vectors"]) for body in bodies] == [3, 3, 3, 1]
    # Temporary objects a store that stopped answering kept (their delete failed): a
    # truncated part among the parts and an output beside the output; --resume passes them by.
    stray = ["e.npz.partial/part-000009.npz.tmp-0", "e.npz.tmp-0"]
    for key in stray:
        client.put_object(Bucket=bucket, Key=key, Body=b"\x93NUMPY")
    resumed = EmbeddingWriter(uri, settings, resume=True, storage_options=options)
    assert resumed.resumed == 10 and resumed.finish("video") == (uri, (10, 16))
    assert sorted(s3_server.keys(bucket)) == ["e.npz", "e.npz.tmp-0"]
    from videoprism_keras.apps.ray_pipeline import embed_on_ray

    with pytest.raises(ValueError, match="embed_on_ray writes a local file"):  # not on Ray
        embed_on_ray(None, [], writer, "video")


# A writer process that dies (SIGKILL, no clean-up of any kind) in the middle of uploading
# the assembled output, after the vectors' header went into the upload.
_KILLED_MIDWAY = """
import json, os, signal, sys
import numpy as np
from videoprism_keras.apps import Embeddings
from videoprism_keras.apps import embed_writer
uri, options = sys.argv[1], json.loads(sys.argv[2])
writer = embed_writer.EmbeddingWriter(uri, {"--kind": "video"}, storage_options=options)
rng = np.random.default_rng(0)
for i in range(3):
    writer.write(Embeddings(rng.normal(size=(2, 8)).astype(np.float32),
                            [f"v{i}.mp4", f"w{i}.mp4"]))
def killed(f, parts, shape):
    f.write(b"\\x93NUMPY" * 2_000_000)  # 14 MB: past the first part of a multipart upload
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)
embed_writer._stream_npy = killed
writer.finish("video")
"""


def test_a_writer_killed_while_uploading_the_output_leaves_none_and_resumes(s3_server):
    bucket = s3_server.bucket()
    uri = f"s3://{bucket}/e.npz"
    done = subprocess.run([sys.executable, "-c", _KILLED_MIDWAY, uri,
                           json.dumps(s3_server.options())], capture_output=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    keys = s3_server.keys(bucket)
    assert "e.npz" not in keys and len([k for k in keys if "/part-" in k]) == 3
    uploads = s3_server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [u["Key"].split(".tmp-")[0] for u in uploads] == ["e.npz"]  # never completed
    resumed = EmbeddingWriter(uri, {"--kind": "video"}, resume=True,
                              storage_options=s3_server.options())  # fmt: skip
    assert resumed.resumed == 6
    assert resumed.finish("video") == (uri, (6, 8))
    data = np.load(io.BytesIO(s3_server.client().get_object(Bucket=bucket, Key="e.npz")["Body"]
                              .read()))  # fmt: skip
    assert sorted(data["paths"].tolist()) == sorted(f"{a}{i}.mp4" for i in range(3)
                                                    for a in "vw")  # fmt: skip


def test_embed_into_s3_equals_a_local_run_by_flags_and_by_environment(
    s3_server, model_flags, videos, tmp_path, monkeypatch, capsys
):
    bucket = s3_server.bucket()
    local = tmp_path / "local.npz"
    assert call(capsys, "embed", videos, "-o", local, *model_flags).returncode == 0
    want = Embeddings.load(local)
    out = call(capsys, "embed", videos, "-o", f"s3://{bucket}/e.npz", *s3_server.flags(),
               *model_flags)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.endswith(f"→ s3://{bucket}/e.npz\n")
    for name, value in s3_server.environment().items():  # no flags: what AWS tools read
        monkeypatch.setenv(name, value)
    out = call(capsys, "embed", videos, "-o", f"s3://{bucket}/e.parquet", *model_flags)
    assert out.returncode == 0, out.stderr
    assert sorted(s3_server.keys(bucket)) == ["e.npz", "e.parquet"]  # no parts left
    (tmp_path / "down").mkdir()
    for key in ("e.npz", "e.parquet"):
        _same(_download(s3_server, bucket, key, tmp_path / "down"), want)


def test_embed_stopped_after_some_batches_resumes_on_s3_with_each_item_once(
    s3_server, model_flags, videos, monkeypatch, capsys
):
    bucket = s3_server.bucket()
    uri = f"s3://{bucket}/e.npz"
    args = ["embed", videos, "-o", uri, "--clip-seconds", "1", *s3_server.flags(), *model_flags]
    written = []
    real_write = EmbeddingWriter.write

    def stop_after_two(self, batch):  # Ctrl-C while the third batch is being written
        if len(written) == 2:
            raise KeyboardInterrupt
        real_write(self, batch)
        written.append(len(batch.paths))

    with monkeypatch.context() as patched:
        patched.setattr(EmbeddingWriter, "write", stop_after_two)
        assert call(capsys, *args).returncode == 130
    parts = [k for k in s3_server.keys(bucket) if "/part-" in k]
    assert len(parts) == 2 and "e.npz" not in s3_server.keys(bucket)
    out = call(capsys, *args, "--resume", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["resumed"] == sum(written) == 4 and result["shape"][0] == 3 + 4 + 5
    data = np.load(io.BytesIO(s3_server.client().get_object(Bucket=bucket, Key="e.npz")["Body"]
                              .read()))  # fmt: skip
    items = list(zip(data["paths"].tolist(), data["start_s"].tolist(), strict=True))
    assert len(items) == len(set(items)) == 12  # each clip once
    assert s3_server.keys(bucket) == ["e.npz"]


@pytest.fixture
def refused_port():
    """A loopback port held for the test, bound and never listening: no other process can
    take it meanwhile, and a connection to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.mark.parametrize("fault", ["bucket", "secret", "endpoint", "option", "suffix", "ray"])
@pytest.mark.parametrize("resume", [[], ["--resume"]], ids=["new", "resume"])
def test_a_wrong_s3_output_is_one_line_naming_o_before_the_model_loads(
    s3_server, fault, resume, videos, tmp_path, monkeypatch, capsys, refused_port
):
    monkeypatch.chdir(tmp_path)  # where Path("s3://b/x") would have made a folder "s3:"
    bucket = s3_server.bucket()
    changed = {"secret": {"aws_secret_access_key": "wrong"},
               "endpoint": {"aws_endpoint": f"http://127.0.0.1:{refused_port}"},
               "option": {"aws_no_such_thing": "1"}}  # fmt: skip
    uri = f"s3://{'no-such-bucket' if fault == 'bucket' else bucket}/e"
    uri += ".txt" if fault == "suffix" else ".npz"
    extra = ["--ray"] if fault == "ray" else []
    reason = {"bucket": "the bucket no-such-bucket does not exist",
              "secret": "the credentials were refused", "endpoint": "the endpoint does not answer",
              "option": "unknown storage option(s) aws_no_such_thing",
              "suffix": "expected a .npz or .npy or .parquet file",
              "ray": "--ray writes its embeddings to a local file"}[fault]  # fmt: skip
    began = time.monotonic()
    out = call(capsys, "embed", videos, "-o", uri, *resume, *extra,
               *s3_server.flags(**changed.get(fault, {})), "--preset", "no-such-model")  # fmt: skip
    took = time.monotonic() - began
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert f"-o {uri}: " in out.stderr and reason in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and took < 30, (took, out.stderr)
    assert not list(tmp_path.iterdir()) and s3_server.keys(bucket) == []  # nothing written


def test_storage_options_with_a_local_output_are_one_line(videos, tmp_path, capsys):
    out = call(capsys, "embed", videos, "-o", tmp_path / "e.npz", "--storage-option",
               "region=x", "--preset", "no-such-model")  # fmt: skip
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "--storage-option is for an -o on an object store" in out.stderr


_CREDENTIALS, _ENDPOINT = "the credentials were refused", "the endpoint does not answer"


@pytest.mark.parametrize(("text", "meaning"), [
    ("AWS Error NO_SUCH_BUCKET during HeadBucket operation", "the bucket does not exist"),
    ("Generic S3 error: NoSuchBucket: The specified bucket does not exist",
     "the bucket does not exist"),
    ("AWS Error ACCESS_DENIED during HeadBucket operation: No response body.", _CREDENTIALS),
    ("Generic S3 error: SignatureDoesNotMatch", _CREDENTIALS),
    ("AWS Error SIGNATURE_DOES_NOT_MATCH during GetObject operation", _CREDENTIALS),
    ("Client error with status 403 Forbidden: InvalidAccessKeyId", _CREDENTIALS),
    ("AWS Error NETWORK_CONNECTION during HeadBucket operation: curlCode: 7", _ENDPOINT),
    ("Generic S3 error: error sending request for url (http://127.0.0.1:9/b)", _ENDPOINT),
    ("Commit conflict: Timeout waiting for the lock", None),
])  # fmt: skip
def test_one_table_reads_pyarrows_and_lances_words_for_a_store_fault(text, meaning):
    from videoprism_keras.apps.object_store import object_store_fault

    assert object_store_fault(text) == meaning

"""Object stores as a user meets them: whether a name is an address (`s3://…`) or a local
file, and what a store's refusal means. One home for the embeddings writer (pyarrow), the
index (Lance) and the CLI, which checks names before any model loads: so this module
imports nothing heavy.
"""

from __future__ import annotations

import os


def is_uri(path: str | os.PathLike) -> bool:
    """An address with a scheme (`s3://…`, `gs://…`, `file://…`), not a local file name
    (`Path()` would fold `s3://b/x` into a local folder `s3:/b`)."""
    return "://" in os.fspath(path)


# What an object store's refusal says → what it means for a user. The markers are both
# clients' words: Lance's (Rust's object_store: `NoSuchBucket`, "error sending request") and
# pyarrow's (the AWS C++ SDK: `NO_SUCH_BUCKET`, `NETWORK_CONNECTION`), compared without case
# or underscores, so one marker serves both spellings.
OBJECT_STORE_FAULTS = (
    (("NoSuchBucket",), "the bucket does not exist"),
    (("Signature", "InvalidAccessKey", "AccessDenied", "403 Forbidden", "ExpiredToken"),
     "the credentials were refused"),
    # The HTTP clients' and the OS's words for no answer (not a bare "timeout": a lock or a
    # commit may time out on a reachable store).
    (("NetworkConnection", "error sending request", "Connection refused", "connect error",
      "dns error", "operation timed out", "Connection timed out"),
     "the endpoint does not answer"),
)  # fmt: skip


def _plain(text: str) -> str:
    return text.replace("_", "").lower()


def object_store_fault(text: str) -> str | None:
    """What an object store's error text means in a user's words (the bucket, the
    credentials or the endpoint), or None for any other error."""
    said = _plain(text)
    for words, reason in OBJECT_STORE_FAULTS:
        if any(_plain(word) in said for word in words):
            return reason
    return None

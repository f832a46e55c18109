"""A real S3 API on loopback for the object-storage tests: moto's server in its own process
(tests/s3_server.py), credentials checked (an IAM user with every right; a wrong key is
refused as S3 refuses it), a bucket per test, and the ways a user points the index at it:
`--storage-option` flags and the environment."""

from __future__ import annotations

import json
import select
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

SERVER = Path(__file__).with_name("s3_server.py")
REGION = "us-east-1"
SERVER_START_S = 60


@dataclass
class S3:
    endpoint: str
    key_id: str
    secret: str

    def client(self, secret: str | None = None):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=self.key_id,
                            aws_secret_access_key=secret or self.secret)  # fmt: skip

    def bucket(self) -> str:
        name = f"bkt-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def options(self, **changed) -> dict:
        """LanceDB's storage options for this server."""
        return {"aws_endpoint": self.endpoint, "aws_access_key_id": self.key_id,
                "aws_secret_access_key": self.secret, "region": REGION, "allow_http": "true",
                **changed}  # fmt: skip

    def flags(self, **changed) -> list[str]:
        """The same as `--storage-option KEY=VALUE` flags."""
        return [a for k, v in self.options(**changed).items()
                for a in ("--storage-option", f"{k}={v}")]  # fmt: skip

    def environment(self) -> dict:
        """The same as environment variables (what the AWS tools read too)."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": self.key_id,
                "AWS_SECRET_ACCESS_KEY": self.secret, "AWS_REGION": REGION,
                "AWS_ALLOW_HTTP": "true"}  # fmt: skip

    def keys(self, bucket: str) -> list[str]:
        found = self.client().list_objects_v2(Bucket=bucket).get("Contents", [])
        return [item["Key"] for item in found]


def _post(url, body: bytes):
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "text/plain"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.read()


def _refuses_a_second_create(s3: S3) -> None:
    """Lance commits a version with a PUT that must fail if the object exists: a store that
    accepts a second one would lose commits, and the tests would prove nothing."""
    from botocore.exceptions import ClientError

    client, bucket = s3.client(), s3.bucket()
    client.put_object(Bucket=bucket, Key="probe", Body=b"1", IfNoneMatch="*")
    try:
        client.put_object(Bucket=bucket, Key="probe", Body=b"2", IfNoneMatch="*")
    except ClientError as err:
        status = err.response["ResponseMetadata"]["HTTPStatusCode"]
        assert status == 412, f"a second If-None-Match: * PUT answered {status}, not 412"
    else:
        pytest.fail("the S3 server accepted a second If-None-Match: * PUT: commits could be lost")


def serve():
    """The loopback S3 server (an `S3`), until the generator is closed: a test module's
    session fixture is `yield from s3.serve()`."""
    pytest.importorskip("moto", reason="the object-storage tests need moto[server] (test extra)")
    process = subprocess.Popen([sys.executable, str(SERVER)], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    try:
        # The server prints its port once listening; a server that hangs before that
        # fails the session in a minute, not never.
        ready, _, _ = select.select([process.stdout], [], [], SERVER_START_S)
        if not ready:
            pytest.fail(f"the S3 server printed no port within {SERVER_START_S} s")
        endpoint = f"http://127.0.0.1:{int(process.stdout.readline())}"
        import boto3

        iam = boto3.client("iam", endpoint_url=endpoint, region_name=REGION,
                           aws_access_key_id="setup", aws_secret_access_key="setup")  # fmt: skip
        iam.create_user(UserName="tests")
        allow = {"Effect": "Allow", "Action": "*", "Resource": "*"}
        everything = {"Version": "2012-10-17", "Statement": [allow]}
        iam.put_user_policy(UserName="tests", PolicyName="all",
                            PolicyDocument=json.dumps(everything))  # fmt: skip
        key = iam.create_access_key(UserName="tests")["AccessKey"]
        _post(f"{endpoint}/moto-api/reset-auth", b"0")  # from now on, credentials are checked
        s3 = S3(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
        _refuses_a_second_create(s3)
        yield s3
    finally:
        process.kill()
        process.wait(timeout=30)

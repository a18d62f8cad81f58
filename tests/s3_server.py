"""An S3 server for tests: moto's ThreadedMotoServer, offline, in a child process of its own.

A child process, not a thread of the test process: the server keeps every uploaded part in memory, and
the storage tests measure the test process's own allocations (tracemalloc). The child exits when the
test closes its standard input, so a killed test run leaves no server behind.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3

from shared.launcher import free_port

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "labelhive-test",
    "AWS_SECRET_ACCESS_KEY": "labelhive-test-secret",
    "AWS_REGION": "us-east-1",
}

_SERVER = """
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
server.start()
print("ready", flush=True)
sys.stdin.read()
server.stop()
"""


@dataclass
class S3Server:
    endpoint: str

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=CREDENTIALS["AWS_REGION"],
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def env(self, url: str) -> dict[str, str]:
        """What a service needs to keep its files at `url` (`s3://bucket/prefix`) on this server."""
        return {"LABELHIVE_OBJECT_STORE": url, "AWS_ENDPOINT_URL": self.endpoint, **CREDENTIALS}

    def store_config(self) -> dict[str, str]:
        """The same, as `S3ObjectStore.from_url` keyword arguments (tests leave os.environ alone)."""
        return {
            "endpoint": self.endpoint,
            "access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            "region": CREDENTIALS["AWS_REGION"],
        }

    def new_bucket(self) -> str:
        name = f"labelhive-test-{secrets.token_hex(4)}"
        self.client().create_bucket(Bucket=name)
        return name

    def contents(self, bucket: str) -> list[str]:
        """Every key in the bucket, and every multipart upload not completed nor aborted."""
        client = self.client()
        keys = [
            item["Key"]
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for item in page.get("Contents", [])
        ]
        uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        return keys + [f"(unfinished upload) {upload['Key']}" for upload in uploads]


@contextmanager
def s3_server() -> Iterator[S3Server]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == b"ready", "moto did not start"
        yield S3Server(f"http://127.0.0.1:{port}")
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

"""BlobStore on S3's API: Cloudflare R2 in production, moto's S3 locally."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any


class S3BlobStore:
    def __init__(self, bucket: str, client_factory: Callable[[], Any]) -> None:
        self._bucket = bucket
        self._client_factory = client_factory
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.client.put_object(Bucket=self._bucket, Key=key, Body=data, ContentType=content_type)

    def get(self, key: str, max_bytes: int | None = None) -> bytes:
        try:
            response = self.client.get_object(Bucket=self._bucket, Key=key)
        except self.client.exceptions.NoSuchKey as exc:
            raise KeyError(key) from exc
        body = response["Body"]
        try:
            if max_bytes is not None and int(response.get("ContentLength", 0)) > max_bytes:
                raise KeyError(key)
            data: bytes = body.read() if max_bytes is None else body.read(max_bytes + 1)
        finally:
            body.close()
        if max_bytes is not None and len(data) > max_bytes:
            raise KeyError(key)
        return data

    def size(self, key: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            return int(self.client.head_object(Bucket=self._bucket, Key=key)["ContentLength"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def delete(self, keys: Sequence[str]) -> list[str]:
        """Batched DeleteObjects; keys it reports failed (or a store without it) get single deletes."""
        from botocore.exceptions import ClientError

        retry: list[str] = []
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            try:
                response = self.client.delete_objects(
                    Bucket=self._bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True}
                )
                retry += [error["Key"] for error in response.get("Errors", [])]
            except ClientError:
                retry += list(chunk)
        failed = []
        for key in retry:
            try:
                self.client.delete_object(Bucket=self._bucket, Key=key)
            except ClientError:
                failed.append(key)
        return failed

    def list_keys(self, prefix: str) -> Iterator[str]:
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield item["Key"]

    def list_prefixes(self, prefix: str) -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self._bucket, Prefix=prefix, Delimiter="/"):
            for item in page.get("CommonPrefixes", []):
                yield item["Prefix"]

    def oldest_object_age_s(self, prefix: str, now: datetime) -> float | None:
        oldest: datetime | None = None
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                if oldest is None or item["LastModified"] < oldest:
                    oldest = item["LastModified"]
        return None if oldest is None else max(0.0, (now - oldest).total_seconds())

    def presign_put(self, key: str, content_type: str, content_length: int, expires_s: int) -> str:
        # Content-Type and Content-Length are signed: an upload of another type or size is refused.
        url: str = self.client.generate_presigned_url(
            "put_object",
            Params={"Bucket": self._bucket, "Key": key, "ContentType": content_type, "ContentLength": content_length},
            ExpiresIn=expires_s,
        )
        return url

    def presign_get(self, key: str, expires_s: int) -> str:
        url: str = self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=expires_s
        )
        return url

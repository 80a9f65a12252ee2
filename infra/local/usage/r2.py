"""R2's operations as its price list names them (class A, class B, free), from a path-style S3 request."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

# Cloudflare's lists (developers.cloudflare.com/r2/pricing). DeleteObjects is on neither list: counted as
# class A, the dearer guess; DeleteObject and AbortMultipartUpload are free, as are CORS preflights.
R2_CLASS_A = frozenset(
    {
        "ListBuckets",
        "PutBucket",
        "ListObjects",
        "ListObjectsV2",
        "PutObject",
        "CopyObject",
        "CompleteMultipartUpload",
        "CreateMultipartUpload",
        "ListMultipartUploads",
        "UploadPart",
        "UploadPartCopy",
        "ListParts",
        "PutBucketEncryption",
        "PutBucketCors",
        "PutBucketLifecycleConfiguration",
        "DeleteObjects",
    }
)
R2_CLASS_B = frozenset(
    {
        "HeadBucket",
        "HeadObject",
        "GetObject",
        "GetBucketEncryption",
        "GetBucketLocation",
        "GetBucketCors",
        "GetBucketLifecycleConfiguration",
    }
)
_BUCKET_SUBRESOURCES = {
    ("GET", "uploads"): "ListMultipartUploads",
    ("GET", "cors"): "GetBucketCors",
    ("GET", "lifecycle"): "GetBucketLifecycleConfiguration",
    ("GET", "location"): "GetBucketLocation",
    ("GET", "encryption"): "GetBucketEncryption",
    ("PUT", "cors"): "PutBucketCors",
    ("PUT", "lifecycle"): "PutBucketLifecycleConfiguration",
    ("PUT", "encryption"): "PutBucketEncryption",
    ("POST", "delete"): "DeleteObjects",
}


def r2_operation(method: str, target: str, copy_source: bool = False) -> str:
    """The S3 operation of a path-style request (`/bucket/key?query`), as R2's price list names it."""
    split = urlsplit(target)
    bucket, _, key = split.path.lstrip("/").partition("/")
    query = parse_qs(split.query, keep_blank_values=True)
    if method == "OPTIONS":
        return "CorsPreflight"
    if not bucket:
        return "ListBuckets"
    if not key:
        for (verb, name), operation in _BUCKET_SUBRESOURCES.items():
            if verb == method and name in query:
                return operation
        listing = "ListObjectsV2" if query.get("list-type") == ["2"] else "ListObjects"
        return {"GET": listing, "HEAD": "HeadBucket", "PUT": "PutBucket"}.get(method, "DeleteBucket")
    if method == "PUT":
        if "uploadId" in query:
            return "UploadPartCopy" if copy_source else "UploadPart"
        return "CopyObject" if copy_source else "PutObject"
    if method == "POST":
        return "CreateMultipartUpload" if "uploads" in query else "CompleteMultipartUpload"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
    if method == "GET" and "uploadId" in query:
        return "ListParts"
    return "HeadObject" if method == "HEAD" else "GetObject"


def r2_class(operation: str) -> str:
    return "class_a" if operation in R2_CLASS_A else "class_b" if operation in R2_CLASS_B else "free"

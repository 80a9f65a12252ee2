"""boto3 clients, created lazily and once per process (never at import time)."""

from __future__ import annotations

from functools import cache
from typing import Any

from portrait_studio.config import Settings


def _config(**s3: Any) -> Any:
    from botocore.config import Config

    return Config(
        retries={"max_attempts": 5, "mode": "standard"},
        connect_timeout=5,
        read_timeout=30,
        # R2 rejects the newer default checksum headers on some calls; send them only when required.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        s3=s3 or None,
        signature_version="s3v4" if s3 else None,
    )


@cache
def aws_client(service: str, region: str, endpoint_url: str | None) -> Any:
    import boto3

    return boto3.session.Session().client(service, region_name=region, endpoint_url=endpoint_url, config=_config())


@cache
def aws_resource(service: str, region: str, endpoint_url: str | None) -> Any:
    import boto3

    return boto3.session.Session().resource(service, region_name=region, endpoint_url=endpoint_url, config=_config())


def object_store_client(settings: Settings, access_key_id: str | None, secret_access_key: str | None) -> Any:
    """S3 client for R2 (or moto locally). Path-style works on both and needs no DNS per bucket."""
    import boto3

    return boto3.session.Session().client(
        "s3",
        region_name=settings.r2_region,
        endpoint_url=settings.r2_endpoint_url,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        config=_config(addressing_style="path"),
    )

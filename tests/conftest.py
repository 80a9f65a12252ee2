"""Shared test setup: Powertools as the template configures it, no real AWS credentials ever used."""

from __future__ import annotations

import os

os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "portrait-studio")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "PortraitStudio")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

"""The local cloud account: the one region and account id every local ARN, event and backend lookup uses."""

from __future__ import annotations

from typing import Final

REGION: Final = "us-east-1"
ACCOUNT: Final = "123456789012"

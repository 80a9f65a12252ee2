"""Replicate's deployments: any `owner/name` is one, serving PhotoMaker at the pinned version."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Final

from infra.local.replicate.schema import MODEL
from infra.local.replicate.wire import JSONDict, iso
from portrait_studio.config import PHOTOMAKER_VERSION

# Any `owner/name` is a deployment (no list to keep in step with the config), serving PhotoMaker at the pinned
# version on the hardware docs/deploying.md recommends.
DEPLOYMENT_HARDWARE: Final = "gpu-a40-large"


class Deployments:
    """The deployments named so far, guarded by the emulator's lock."""

    def __init__(self, lock: threading.Lock, clock: Callable[[], datetime]) -> None:
        self._lock = lock
        self._clock = clock
        self._deployments: dict[str, JSONDict] = {}

    def get(self, full_name: str) -> JSONDict:
        """Deployment `owner/name` as Replicate's API shows it; its release 1 dates from when it was first named."""
        owner, name = full_name.split("/")
        with self._lock:
            if full_name not in self._deployments:
                release = {
                    "number": 1,
                    "model": MODEL,
                    "version": PHOTOMAKER_VERSION,
                    "created_at": iso(self._clock()),
                    "created_by": {"type": "organization", "username": owner, "name": owner, "github_url": None},
                    "configuration": {"hardware": DEPLOYMENT_HARDWARE, "min_instances": 0, "max_instances": 1},
                }
                self._deployments[full_name] = {"owner": owner, "name": name, "current_release": release}
            return copy.deepcopy(self._deployments[full_name])

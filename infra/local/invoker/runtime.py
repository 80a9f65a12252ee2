"""`LambdaRuntime`: every function's pool, invoked as the gateway, the pollers and the scheduler invoke them."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from infra.local.invoker.pool import FunctionPool
from infra.local.invoker.spec import FunctionSpec, Observer


class LambdaRuntime:
    """Every function's pool; `invoke` as the gateway, the pollers and the scheduler call it."""

    def __init__(
        self, specs: dict[str, FunctionSpec], clock_file: Path | None = None, observer: Observer | None = None
    ) -> None:
        self.pools = {name: FunctionPool(spec, clock_file, observer) for name, spec in specs.items()}

    def prewarm(self) -> None:
        """One worker per function, started in the background so the first request is not a cold start."""
        for pool in self.pools.values():
            threading.Thread(target=pool.prewarm, name=f"prewarm-{pool.spec.name}", daemon=True).start()

    def concurrency(self, function: str) -> int:
        return self.pools[function].spec.concurrency

    def timeout_s(self, function: str) -> float:
        return self.pools[function].spec.timeout_s

    def invoke(self, function: str, event: Any) -> Any:
        return self.pools[function].invoke(event)

    def stop(self) -> None:
        for pool in self.pools.values():
            pool.stop()

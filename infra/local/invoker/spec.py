"""What a function runs with (`FunctionSpec`), how an invocation fails, and who hears of its memory and kills."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    handler_file: Path
    handler_name: str
    timeout_s: float
    memory_mb: int
    environment: dict[str, str]  # the process's whole environment
    concurrency: int = 1


class FunctionError(Exception):
    """The handler raised (or its module failed to load): Lambda answers the invocation with an error."""

    def __init__(self, function: str, error_type: str, message: str) -> None:
        super().__init__(f"{function}: {error_type}: {message}")
        self.error_type = error_type


class FunctionCrash(Exception):
    """The execution environment died during the invocation: no response."""

    kind = "crash"


class FunctionTimeout(FunctionCrash):
    kind = "timeout"


class FunctionOutOfMemory(FunctionCrash):
    kind = "out_of_memory"


class Observer(Protocol):
    def memory(self, function: str, peak_mb: float) -> None: ...

    def killed(self, function: str, kind: str) -> None: ...

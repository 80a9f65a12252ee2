"""moto as the local stack runs it: DynamoDB's atomicity, and two costs moto pays on every request removed.

Each change is in its own module or function here and keeps what AWS clients see; `prepare_moto` applies them all,
once per process, before a moto server starts (the local stack's cloud and the integration tests' server).
"""

from __future__ import annotations

from infra.local.dynamodb_atomic import make_dynamodb_atomic
from infra.local.dynamodb_serializer import write_attribute_values_directly


def prepare_moto() -> None:
    """Apply every change below to moto in this process (idempotent)."""
    make_dynamodb_atomic()
    write_attribute_values_directly()
    _list_moto_modules_once()


def _list_moto_modules_once() -> None:
    """moto's server lists its own package directory (a listdir and a stat per service) on every request to find
    the service; the list never changes while it runs."""
    from moto import backends

    modules = tuple(backends.list_of_moto_modules())  # idempotent: a second call lists the same tuple
    backends.list_of_moto_modules = lambda: modules

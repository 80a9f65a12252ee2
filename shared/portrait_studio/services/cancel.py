"""Stopping a prediction we no longer want, best effort."""

from __future__ import annotations

from portrait_studio.ports import Generator, Metrics


def cancel_quietly(generator: Generator, metrics: Metrics, prediction_id: str) -> None:
    """Cancel, counting a failure instead of raising it: what called this has already decided and must go on
    (a lost cancel costs one prediction's run, and the reconciler or the prediction's own end settles it)."""
    try:
        generator.cancel(prediction_id)
    except Exception:
        metrics.count("CancelFailed")

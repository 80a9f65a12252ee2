from __future__ import annotations

import io
from dataclasses import dataclass

import pytest
from PIL import Image

from portrait_studio.config import Settings
from portrait_studio.services.aftercare import Aftercare
from portrait_studio.services.deletion import DeletionService
from portrait_studio.services.generation import GenerationService
from portrait_studio.services.jobs import JobsService
from portrait_studio.services.payments import PaymentsService
from portrait_studio.services.retention import RetentionService
from tests.fakes import (
    CountingMetrics,
    FakeDownloader,
    FakeGenerator,
    FakePayments,
    FixedClock,
    MemoryBlobStore,
    MemoryJobStore,
    MemoryNotifier,
    MemoryQueue,
)

NORMALIZE, DISPATCH, COLLECT = "q-normalize", "q-dispatch", "q-collect"


def png_1024(color: tuple[int, int, int] = (120, 130, 140)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (1024, 1024), color).save(buffer, "PNG")
    return buffer.getvalue()


@dataclass
class World:
    settings: Settings
    clock: FixedClock
    store: MemoryJobStore
    blobs: MemoryBlobStore
    queue: MemoryQueue
    generator: FakeGenerator
    downloader: FakeDownloader
    metrics: CountingMetrics
    jobs: JobsService
    generation: GenerationService
    retention: RetentionService
    stripe: FakePayments
    payments: PaymentsService
    mail: MemoryNotifier
    aftercare: Aftercare
    deletion: DeletionService


@pytest.fixture
def world() -> World:
    settings = Settings(normalize_queue_url=NORMALIZE, dispatch_queue_url=DISPATCH, collect_queue_url=COLLECT)
    clock = FixedClock()
    store = MemoryJobStore(clock)
    blobs = MemoryBlobStore(clock)
    queue = MemoryQueue()
    generator = FakeGenerator()
    downloader = FakeDownloader(png_1024())
    metrics = CountingMetrics()
    retention = RetentionService(settings, store, blobs, clock, generator, metrics)
    stripe = FakePayments(clock)
    payments = PaymentsService(settings, store, queue, stripe, clock, retention, metrics)
    mail = MemoryNotifier()
    aftercare = Aftercare(settings, store, clock, payments, mail, metrics)
    return World(
        settings,
        clock,
        store,
        blobs,
        queue,
        generator,
        downloader,
        metrics,
        JobsService(settings, store, blobs, queue, clock),
        GenerationService(
            settings, store, blobs, queue, generator, downloader, clock, metrics, after_finish=aftercare.run
        ),
        retention,
        stripe,
        payments,
        mail,
        aftercare,
        DeletionService(store, clock, payments, retention, metrics),
    )

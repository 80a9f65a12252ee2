"""Builds services from settings with the real adapters — lazily, once per process.

Handlers call `container()`; tests and the local stack install their own with `use(...)`.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from portrait_studio.clock import SystemClock
from portrait_studio.config import Settings, get_settings

if TYPE_CHECKING:  # services are imported when first used: each function needs only its own (cold starts)
    from portrait_studio.ports import (
        BlobStore,
        Clock,
        Downloader,
        Generator,
        Idempotency,
        JobStore,
        Metrics,
        Notifier,
        Payments,
        Queue,
        SecretStore,
    )
    from portrait_studio.services.aftercare import Aftercare
    from portrait_studio.services.deletion import DeletionService
    from portrait_studio.services.generation import GenerationService
    from portrait_studio.services.jobs import JobsService
    from portrait_studio.services.ledger import Ledger
    from portrait_studio.services.more import MoreLikeThis
    from portrait_studio.services.normalization import NormalizationService
    from portrait_studio.services.payments import PaymentsService
    from portrait_studio.services.provenance import ProvenanceStamp
    from portrait_studio.services.retention import RetentionService
    from portrait_studio.services.webhooks import WebhookVerifier


class Container:
    def __init__(self, settings: Settings | None = None, clock: Clock | None = None, **overrides: Any) -> None:
        self._settings = settings
        self._clock = clock
        for name, value in overrides.items():
            setattr(self, name, value)  # replaces the cached_property for that name

    @cached_property
    def settings(self) -> Settings:
        return self._settings or get_settings()

    @cached_property
    def clock(self) -> Clock:
        return self._clock or SystemClock()

    # --- adapters ----------------------------------------------------------------------------------
    @cached_property
    def secrets(self) -> SecretStore:
        from portrait_studio.adapters.aws import aws_client
        from portrait_studio.adapters.ssm_secrets import SsmSecretStore

        s = self.settings
        return SsmSecretStore(lambda: aws_client("ssm", s.aws_region, s.aws_endpoint_url), s.secrets_max_age_s)

    @cached_property
    def store(self) -> JobStore:
        from portrait_studio.adapters.aws import aws_resource
        from portrait_studio.adapters.dynamo_jobs import DynamoJobStore

        s = self.settings
        return DynamoJobStore(
            s.table_name, lambda: aws_resource("dynamodb", s.aws_region, s.aws_endpoint_url), self.clock
        )

    @cached_property
    def blobs(self) -> BlobStore:
        from portrait_studio.adapters.aws import object_store_client
        from portrait_studio.adapters.s3_blobs import S3BlobStore

        s = self.settings

        def client() -> Any:
            key_id = self.secrets.get(s.r2_access_key_id_param) if s.r2_access_key_id_param else None
            secret = self.secrets.get(s.r2_secret_access_key_param) if s.r2_secret_access_key_param else None
            return object_store_client(s, key_id, secret)

        return S3BlobStore(s.bucket, client)

    @cached_property
    def queue(self) -> Queue:
        from portrait_studio.adapters.aws import aws_client
        from portrait_studio.adapters.sqs_queue import SqsQueue

        s = self.settings
        return SqsQueue(lambda: aws_client("sqs", s.aws_region, s.aws_endpoint_url))

    @cached_property
    def generator(self) -> Generator:
        from portrait_studio.adapters.replicate_http import ReplicateHttpGenerator

        s = self.settings
        return ReplicateHttpGenerator(
            str(s.replicate_api_url),
            lambda: self.secrets.get(s.replicate_token_param),
            deployment=s.replicate_deployment,
        )

    @cached_property
    def downloader(self) -> Downloader:
        from portrait_studio.adapters.http_download import HttpDownloader

        return HttpDownloader(self.settings.output_origins)

    @cached_property
    def idempotency(self) -> Idempotency:
        from portrait_studio.adapters.aws import aws_client
        from portrait_studio.adapters.idempotency import PowertoolsIdempotency

        s = self.settings
        return PowertoolsIdempotency(
            s.idempotency_table_name,
            lambda: aws_client("dynamodb", s.aws_region, s.aws_endpoint_url),
            expires_after_s=2 * 24 * 3600,  # longer than Replicate retries a webhook
        )

    @cached_property
    def metrics(self) -> Metrics:
        from portrait_studio.adapters.metrics import PowertoolsMetrics

        return PowertoolsMetrics()

    # --- services ----------------------------------------------------------------------------------
    @cached_property
    def jobs(self) -> JobsService:
        from portrait_studio.services.jobs import JobsService

        return JobsService(self.settings, self.store, self.blobs, self.queue, self.clock)

    @cached_property
    def more(self) -> MoreLikeThis:
        from portrait_studio.services.more import MoreLikeThis

        return MoreLikeThis(self.settings, self.store, self.blobs, self.queue, self.clock, self.jobs)

    @cached_property
    def normalization(self) -> NormalizationService:
        from portrait_studio.services.normalization import NormalizationService

        s = self
        return NormalizationService(s.settings, s.store, s.blobs, s.queue, s.clock, s.metrics)

    @cached_property
    def generation(self) -> GenerationService:
        from portrait_studio.services.generation import GenerationService

        s = self
        return GenerationService(
            s.settings,
            s.store,
            s.blobs,
            s.queue,
            s.generator,
            s.downloader,
            s.clock,
            s.metrics,
            s.provenance,
            after_finish=lambda job_id: self.aftercare.run(job_id),
        )

    @cached_property
    def notifier(self) -> Notifier:
        from portrait_studio.adapters.aws import aws_client
        from portrait_studio.adapters.ses_notifier import SesNotifier

        s = self.settings
        return SesNotifier(
            lambda: aws_client("sesv2", s.aws_region, s.aws_endpoint_url), s.mail_from, s.mail_configuration_set
        )

    @cached_property
    def aftercare(self) -> Aftercare:
        from portrait_studio.services.aftercare import Aftercare

        s = self
        return Aftercare(s.settings, s.store, s.clock, s.payments, s.notifier, s.metrics)

    @cached_property
    def payment_provider(self) -> Payments:
        from portrait_studio.adapters.stripe_payments import StripePayments

        s = self.settings
        return StripePayments(
            lambda: self.secrets.get(s.stripe_secret_key_param),
            lambda: self.secrets.get(s.stripe_webhook_secret_param),
            api_url=str(s.stripe_api_url),
            tolerance_s=s.stripe_webhook_tolerance_s,
        )

    @cached_property
    def payments(self) -> PaymentsService:
        from portrait_studio.services.payments import PaymentsService

        s = self
        return PaymentsService(s.settings, s.store, s.queue, s.payment_provider, s.clock, s.retention, s.metrics)

    @cached_property
    def deletion(self) -> DeletionService:
        from portrait_studio.services.deletion import DeletionService

        s = self
        return DeletionService(s.store, s.clock, s.payments, s.retention, s.metrics)

    @cached_property
    def ledger(self) -> Ledger:
        from portrait_studio.services.ledger import Ledger

        s = self
        return Ledger(s.store, s.payment_provider, s.payments, s.clock, s.metrics)

    @cached_property
    def provenance(self) -> ProvenanceStamp:
        from portrait_studio.services.provenance import ProvenanceStamp, SignerMaterial

        s = self.settings

        def material() -> SignerMaterial:  # read when a result is stored, through the secrets' cache
            key = self.secrets.get(s.c2pa_signing_key_param)
            return SignerMaterial(key, self.secrets.get(s.c2pa_certificate_chain_param))

        return ProvenanceStamp(material, model_version=s.photomaker_version, deployment=s.replicate_deployment)

    @cached_property
    def retention(self) -> RetentionService:
        from portrait_studio.services.retention import RetentionService

        return RetentionService(self.settings, self.store, self.blobs, self.clock, self.generator, self.metrics)

    @cached_property
    def webhooks(self) -> WebhookVerifier:
        from portrait_studio.services.webhooks import WebhookVerifier

        s = self.settings
        return WebhookVerifier(
            lambda: self.secrets.get(s.webhook_secret_param),
            self.clock,
            s.webhook_tolerance_s,
            s.webhook_max_body_bytes,
        )


_current: Container | None = None


def container() -> Container:
    global _current
    if _current is None:
        _current = Container()
    return _current


def use(replacement: Container | None) -> None:
    """Install a container (tests, the local stack); None goes back to the default."""
    global _current
    _current = replacement

"""One settings model for every function, validated once per process.

Defaults run the local stack; a deployed function gets its values from the environment that
`template.yaml` sets (variable names are the field names upper-cased with the `PORTRAIT_` prefix).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from pydantic import Field, HttpUrl, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PHOTOMAKER_VERSION = "ddfc2b08d209f9fa8c1eca692712918bd449f695dabb4a958da31802a9570fe4"

Seconds = Annotated[int, Field(ge=1)]
# A Replicate deployment, `owner/name`, as its URL `/v1/deployments/{owner}/{name}` spells it.
DeploymentName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PORTRAIT_", frozen=True, extra="ignore")

    environment: str = "local"
    aws_region: str = Field(default="us-east-1", validation_alias="AWS_REGION")
    # AWS services (DynamoDB, SQS, SSM). None = the real AWS endpoints.
    aws_endpoint_url: str | None = None
    # The object store: Cloudflare R2's S3 endpoint in production, moto locally.
    r2_endpoint_url: str | None = None
    r2_region: str = "auto"
    bucket: str = "portrait-studio-local"
    table_name: str = "portrait-studio-jobs"
    idempotency_table_name: str = "portrait-studio-idempotency"
    normalize_queue_url: str = ""
    dispatch_queue_url: str = ""
    collect_queue_url: str = ""

    # Secrets are referenced by name; values come from SSM Parameter Store (SecureString).
    replicate_token_param: str = "/portrait-studio/local/replicate-api-token"  # noqa: S105 - a name
    webhook_secret_param: str = "/portrait-studio/local/replicate-webhook-secret"  # noqa: S105 - a name
    r2_access_key_id_param: str = ""
    r2_secret_access_key_param: str = ""
    # The C2PA signer of every result: an EC P-256 key (PKCS#8 PEM) and its certificate chain, leaf first, PEM
    # (docs/provenance.md). The local stack puts a throwaway test chain there at start.
    c2pa_signing_key_param: str = "/portrait-studio/local/c2pa-signing-key"
    c2pa_certificate_chain_param: str = "/portrait-studio/local/c2pa-certificate-chain"
    secrets_max_age_s: Seconds = 300

    replicate_api_url: HttpUrl = HttpUrl("https://api.replicate.com")
    photomaker_version: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] = PHOTOMAKER_VERSION
    # A Replicate deployment (`owner/name`) of PhotoMaker: predictions go to its own warm instances and queue,
    # and the deployment's release decides the version. None = the shared public model at `photomaker_version`.
    replicate_deployment: DeploymentName | None = None
    # Public URL of POST /webhooks/replicate; predictions carry it (plus job and slot) as their webhook.
    webhook_url: str = "http://127.0.0.1:3000/webhooks/replicate"
    webhook_tolerance_s: Seconds = 300
    webhook_max_body_bytes: Seconds = 1_048_576

    # Intake
    min_files: Annotated[int, Field(ge=1)] = 3
    max_files: Annotated[int, Field(ge=1)] = 10
    max_file_bytes: Annotated[int, Field(ge=1)] = 30 * 1024 * 1024
    # Free work on an unpaid job is bounded: upload places granted over its whole life (a removed photo's place
    # is not given back) and submits (each one a round of checking photos). Past them: 409, a new job.
    max_uploads_per_job: Annotated[int, Field(ge=1)] = 20
    max_submits_per_job: Annotated[int, Field(ge=1)] = 5
    allowed_content_types: tuple[str, ...] = (
        "image/jpeg",
        "image/png",
        "image/webp",
        "image/heic",
        "image/heif",
        "image/avif",
    )
    upload_url_ttl_s: Annotated[int, Field(ge=60, le=900)] = 900
    result_url_ttl_s: Annotated[int, Field(ge=60, le=3600)] = 3600
    reference_url_ttl_s: Annotated[int, Field(ge=60, le=3600)] = 3600
    retention_hours: Annotated[int, Field(ge=1, le=48)] = 48
    tombstone_days: Annotated[int, Field(ge=1)] = 30
    create_job_rate_per_hour: Annotated[int, Field(ge=1)] = 30
    web_origin: str = "http://127.0.0.1:3000"

    # Normalization and the quality gate. Defaults measured on ../shared/corpus
    # (docs/photos-and-identity.md "Photos we accept"):
    # real faces score >= 0.53 and false positives <= 0.27; accepted faces fill >= 0.176 of the short side;
    # sharp faces measure 199-870 (blur sigma 1.4 px -> ~20); re-encodes/edits of one photo are <= 2 bits
    # apart, small crops 4-10, different photos >= 14.
    max_pixels: Annotated[int, Field(ge=1)] = 16320 * 12240
    max_side_px: Annotated[int, Field(ge=64)] = 1024
    min_short_side_px: Annotated[int, Field(ge=1)] = 512
    jpeg_quality: Annotated[int, Field(ge=50, le=100)] = 90
    face_min_score: float = 0.3
    face_min_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.15
    face_edge_margin_fraction: Annotated[float, Field(ge=0, lt=0.5)] = 0.05
    blur_min_variance: Annotated[float, Field(ge=0)] = 20.0
    duplicate_max_distance: Annotated[int, Field(ge=0, le=64)] = 6

    # Identity (services/identity.py): cosine distances between SFace descriptors. Set from published PhotoMaker
    # inputs and outputs (benchmarks/identity.py --real; docs/identity-recognizers.md) and checked on
    # ../shared/corpus (same person 0.00-0.34 apart, different people >= 0.76).
    # Same person at intake: the middle of the real references' gap (one person's pairs <= 0.60, two people's
    # >= 0.74).
    identity_same_person_max_distance: Annotated[float, Field(gt=0, lt=2)] = 0.67
    # An output against the references' consensus, looser than intake because a generated face drifts: every
    # published output with one face is within 0.70 of its person's consensus, every other person's >= 0.71.
    identity_output_max_distance: Annotated[float, Field(gt=0, lt=2)] = 0.7

    # Generation
    images_target: Annotated[int, Field(ge=1)] = 32
    images_minimum: Annotated[int, Field(ge=1)] = 30
    # "More like this": rounds a delivered job may ask for, and the headshots each makes (included in the price).
    more_rounds_per_job: Annotated[int, Field(ge=0)] = 2
    more_images_per_round: Annotated[int, Field(ge=1)] = 4
    outputs_per_prediction: Annotated[int, Field(ge=1, le=4)] = 4
    # Predictions one job may create, retries and top-ups included; 0 = 2.5x the base plan (20 for 8 × 4).
    prediction_budget_per_job: Annotated[int, Field(ge=0)] = 0
    max_attempts_per_slot: Annotated[int, Field(ge=1)] = 3
    # How often the reconciler runs (template.yaml's ReconcileSchedule; a test keeps them equal). Jobs are timed
    # out two periods before `max_generating_s`, so every job is terminal within it even if one run fails.
    reconcile_every_s: Seconds = 60
    # A prediction with no word this long is fetched (a webhook normally comes within seconds of a change).
    reconcile_grace_s: Seconds = 120
    # What one prediction takes until this job has measured its own (Replicate's published PhotoMaker figure).
    expected_predict_s: Annotated[float, Field(gt=0)] = 73.0
    # Prediction creates a minute across all jobs (Replicate allows 600 per account): one paced line, fair turns.
    creates_per_minute: Annotated[int, Field(ge=1, le=600)] = 500
    # Replicate 5xx or unreachable: the dispatch comes back after this, doubling per attempt (≤ 15 min).
    unavailable_backoff_s: Seconds = 20
    # A photo still queued this long after submit is given up on (> the queue's retries × the timeout).
    normalize_stuck_s: Seconds = 1800
    claim_stale_s: Seconds = 120
    max_generating_s: Annotated[int, Field(ge=900)] = 1800
    price_per_second_usd: float = 0.000725
    max_output_bytes: Annotated[int, Field(ge=1)] = 20 * 1024 * 1024
    # Where output images may be downloaded from (origins; `*.` = subdomains): Replicate serves files from
    # replicate.delivery and its subdomains. A webhook body names the URLs, so nothing else is fetched. The
    # variable is comma-separated.
    output_origins: Annotated[tuple[str, ...], NoDecode] = (
        "https://replicate.delivery",
        "https://*.replicate.delivery",
    )
    num_steps: Annotated[int, Field(ge=1, le=100)] = 50
    style_strength_ratio: Annotated[float, Field(ge=15, le=50)] = 20
    guidance_scale: Annotated[float, Field(ge=1, le=10)] = 5

    # Payments (Stripe Checkout). The price and promotion codes live in Stripe; we keep only the price's id.
    stripe_api_url: HttpUrl = HttpUrl("https://api.stripe.com")
    stripe_secret_key_param: str = "/portrait-studio/local/stripe-secret-key"  # noqa: S105 - a name
    stripe_webhook_secret_param: str = "/portrait-studio/local/stripe-webhook-secret"  # noqa: S105 - a name
    stripe_price_id: Annotated[str, Field(min_length=1)] = "price_portrait_32"
    currency: Annotated[str, Field(pattern=r"^[a-z]{3}$")] = "usd"
    # Stripe allows 30 minutes to 24 hours; an unpaid job ends (photos deleted) when its checkout expires.
    checkout_ttl_s: Annotated[int, Field(ge=1800, le=86_400)] = 1800
    stripe_webhook_tolerance_s: Seconds = 300

    # Email (Amazon SES): the sender (an address of a verified SES identity) and an optional configuration set
    # that publishes bounces and complaints.
    mail_from: str = "Portrait Studio <headshots@portrait-studio.local>"
    mail_configuration_set: str | None = None

    @model_validator(mode="after")
    def _uploads_cover_one_job(self) -> Settings:
        if self.max_uploads_per_job < self.max_files:
            raise ValueError("max_uploads_per_job must be at least max_files (a new job's photos)")
        return self

    @field_validator("replicate_deployment", "mail_configuration_set", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # The template passes its parameter through even when left empty (no deployment).
        return None if value == "" else value

    @field_validator("allowed_content_types", "output_origins", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment once."""
    return Settings()

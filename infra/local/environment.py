"""What the template's parameters and resources resolve to on the local stack: each PORTRAIT_* variable's value,
and the SSM parameters the deploy puts.

Each function is given only the ones its template entry sets (`infra/local/invoker/environment.py`).
"""

from __future__ import annotations

import os
from typing import Any

from infra.local.account import REGION
from infra.local.cloud import LocalCloud
from portrait_studio.config import PHOTOMAKER_VERSION


def portrait_environment(
    cloud: LocalCloud, replicate_url: str, stripe: Any, api_url: str, mail_identity: str
) -> dict[str, str]:
    """Every PORTRAIT_* variable the template sets (and Powertools' two), with its local value."""
    return {
        "PORTRAIT_ENVIRONMENT": "local",
        "PORTRAIT_AWS_ENDPOINT_URL": cloud.aws_gate_url,
        "PORTRAIT_R2_ENDPOINT_URL": cloud.r2_url,
        "PORTRAIT_R2_REGION": REGION,
        "PORTRAIT_BUCKET": cloud.bucket,
        "PORTRAIT_TABLE_NAME": cloud.table_names.get("JobsTable", ""),
        "PORTRAIT_IDEMPOTENCY_TABLE_NAME": cloud.table_names.get("IdempotencyTable", ""),
        "PORTRAIT_NORMALIZE_QUEUE_URL": cloud.queue_urls.get("NormalizeQueue", ""),
        "PORTRAIT_DISPATCH_QUEUE_URL": cloud.queue_urls.get("DispatchQueue", ""),
        "PORTRAIT_COLLECT_QUEUE_URL": cloud.queue_urls.get("CollectQueue", ""),
        "PORTRAIT_REPLICATE_TOKEN_PARAM": cloud.param("replicate-api-token"),
        "PORTRAIT_WEBHOOK_SECRET_PARAM": cloud.param("replicate-webhook-secret"),
        "PORTRAIT_C2PA_SIGNING_KEY_PARAM": cloud.param("c2pa-signing-key"),
        "PORTRAIT_C2PA_CERTIFICATE_CHAIN_PARAM": cloud.param("c2pa-certificate-chain"),
        "PORTRAIT_R2_ACCESS_KEY_ID_PARAM": cloud.param("r2-access-key-id"),
        "PORTRAIT_R2_SECRET_ACCESS_KEY_PARAM": cloud.param("r2-secret-access-key"),
        "PORTRAIT_REPLICATE_API_URL": replicate_url,
        "PORTRAIT_OUTPUT_ORIGINS": replicate_url,  # the emulator serves its outputs itself
        "PORTRAIT_WEBHOOK_URL": f"{api_url}/webhooks/replicate",
        "PORTRAIT_WEB_ORIGIN": api_url,
        "PORTRAIT_STRIPE_API_URL": stripe.url,
        "PORTRAIT_STRIPE_SECRET_KEY_PARAM": cloud.param("stripe-secret-key"),
        "PORTRAIT_STRIPE_WEBHOOK_SECRET_PARAM": cloud.param("stripe-webhook-secret"),
        "PORTRAIT_STRIPE_PRICE_ID": stripe.price_id,
        "PORTRAIT_MAIL_FROM": f"Portrait Studio <headshots@{mail_identity}>",
        "PORTRAIT_MAIL_CONFIGURATION_SET": "",
        "PORTRAIT_PHOTOMAKER_VERSION": os.environ.get("PORTRAIT_PHOTOMAKER_VERSION", PHOTOMAKER_VERSION),
        # Empty, as the template's default passes it: no deployment, the pinned version.
        "PORTRAIT_REPLICATE_DEPLOYMENT": os.environ.get("PORTRAIT_REPLICATE_DEPLOYMENT", ""),
        "POWERTOOLS_SERVICE_NAME": "portrait-studio",
        "POWERTOOLS_METRICS_NAMESPACE": "PortraitStudio",
    }


def put_deploy_parameters(
    cloud: LocalCloud, replicate_url: str, replicate_token: str, stripe: Any, stripe_key: str
) -> None:
    """The SSM SecureStrings the deploy puts (docs/deploying.md), with their local values."""
    import httpx

    from infra.local.c2pa_chain import make_local_chain

    # As at deploy time: fetch the webhook signing secret from Replicate and keep it in SSM.
    secret = httpx.get(
        f"{replicate_url}/v1/webhooks/default/secret", headers={"Authorization": f"Bearer {replicate_token}"}
    ).json()["key"]
    # A throwaway C2PA chain (a test root and its leaf): results verify, but no viewer trusts that root.
    chain = make_local_chain()
    ((r2_key, r2_secret),) = cloud.r2_credentials.items()
    cloud.put_parameters(
        [
            ("r2-access-key-id", r2_key),
            ("r2-secret-access-key", r2_secret),
            ("replicate-api-token", replicate_token),
            ("replicate-webhook-secret", secret),
            ("c2pa-signing-key", chain.private_key_pem),
            ("c2pa-certificate-chain", chain.certificate_chain_pem),
            ("stripe-secret-key", stripe_key),
            ("stripe-webhook-secret", stripe.webhook_secret),
        ]
    )

"""A reverse proxy in front of moto's S3 that checks presigned URLs the way R2 and S3 do.

moto does not verify query-string (presigned) signatures, so locally an upload of another type or size
than the one signed, or one made after expiry, would be accepted. The gate recomputes SigV4 query auth
for every request whose query carries it and answers S3's own 4xx XML errors when it does not hold:

- `SignatureDoesNotMatch` (403): method, path, query or any signed header (Content-Type, Content-Length,
  Host, ...) differs from what was signed, or the signature itself is wrong;
- `AccessDenied` "Request has expired" (403): `X-Amz-Date` + `X-Amz-Expires` is before the gate's clock;
- `InvalidAccessKeyId` (403): the access key id in `X-Amz-Credential` is not one of `credentials`;
- `AuthorizationQueryParametersError` (400): the SigV4 query parameters are missing or malformed;
- `InvalidArgument` (400): both a query signature and an `Authorization` header.

Requests with an `Authorization` header (the functions' own boto3 calls) go to moto unchanged when their key
id is one of `header_keys` (default: any; the local stack allows only the R2 key, as R2 knows no AWS role):
`InvalidAccessKeyId` (403) otherwise. Unsigned ones (CORS preflight) go to moto unchanged.
Everything is forwarded verbatim — raw request target, headers but the hop-by-hop ones,
body — and moto's answer comes back as it is (CORS headers included). The gate logs nothing: presigned URLs
carry signatures.

- `gate.py`: `S3Gate`, its server and settings; `handler.py`: one request, checked, then forwarded or refused;
- `sigv4.py`: SigV4 query auth and S3's XML error; `checks.py`: the other checks; `body.py`: reading the body;
- `proxy.py`: what goes upstream and comes back.
"""

"""What the local stack's functions would be billed for: counted calls, so a job's cost can be priced.

- Lambda: invocations and GB-seconds per function (wall time of the handler × MemorySize / 1024, in whole ms),
  the peak memory of any one invocation and of the last one, and the invocations killed for their Timeout or
  MemorySize (see `infra/local/invoker/`);
- DynamoDB: read and write request units (on-demand), estimated from each call's request and response;
- DynamoDB, SQS, SSM, SES: every call the AWS gate (`infra/local/aws_gate/`) forwards for a function;
- SQS: requests (one per 64 KB of payload) of the functions, and apart from them the pollers' (Lambda's
  event-source mappings poll and delete too), whose empty receives are counted on their own;
- R2: class A, class B and free operations of every request the S3 gate forwards — the functions' boto3
  calls and the presigned PUTs and GETs of browsers and Replicate alike;
- Replicate: the predictions created, read and canceled.

`GET /_local/usage` returns `snapshot()`; `DELETE /_local/usage` resets the counters.

- `counters.py`: `Usage`, the counters and the hooks that feed them;
- `dynamodb.py`: request units, estimated; `r2.py`: R2's operation classes; `calls.py`: SQS's and Replicate's calls.
"""

"""A proxy in front of moto that authorizes every AWS call as IAM would, and counts what it would bill.

moto accepts any credentials and allows everything. Each function process gets its own access key (its
execution role), each queue poller the key of its function's event source mapping (which polls with the
function's role, as Lambda's does), and the stack itself an admin key. For every request the gate reads the
caller, the operation and the resources (`request.py`), asks the role (`iam.py`), and either forwards it to moto
untouched or answers the error AWS answers — `AccessDeniedException` / `AccessDenied` naming the action and
resource — and records the denial for `GET /_local/iam`. An unknown key is refused as AWS refuses one
(`UnrecognizedClientException`). An allowed call can be made to fail as the service sometimes fails
(`/_local/aws-faults`, `faults.py`).

- `gate.py`: `AwsGate`, its decisions, `/_local/iam` and its server; `handler.py`: one call, forwarded or refused;
- `request.py`: what a call asks IAM for; `iam.py`: each function's role, as SAM deploys it, evaluated;
- `identities.py`: who is calling (each function's key, its event source's, the stack's); `faults.py`: service
  errors for chosen calls (`/_local/aws-faults`).
"""

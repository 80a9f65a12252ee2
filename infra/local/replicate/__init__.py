"""A local stand-in for Replicate's HTTP API, running PhotoMaker predictions without any model.

It speaks enough of `https://api.replicate.com/v1` for the official `replicate` client (create, get, list,
cancel predictions; get a deployment and create its predictions; the default webhook secret), signs its
webhooks like Replicate (Standard Webhooks), and can inject the faults a real run meets: 429s, failures,
NSFW-dropped outputs, outputs showing somebody else or no face at all, and late, duplicate, out-of-order or missing
webhooks. Outputs are the reference photo, tinted and stamped "LOCAL PREVIEW - not AI output", so nobody can
mistake them for generated headshots.
On request it also models capacity (instances, cold boots, queueing, run times) in emulated time.

- `emulator.py`: `ReplicateEmulator`, its parts put together;
- `routes.py`: the HTTP routes; `schema.py`: PhotoMaker's input schema; `deployments.py`: deployments;
- `predictions.py`: each prediction's lifecycle; `state.py`: what is kept of one;
- `faults.py`: the fault profile; `model.py`, `render.py`, `reference.py`: the outputs;
- `capacity.py`, `clock.py`, `scheduling.py`: the capacity model, its emulated time, and its runs;
- `webhooks.py`: signing and delivery; `wire.py`: JSON, timestamps and ids as Replicate writes them.

    python -m infra.local.replicate --port 8788
"""

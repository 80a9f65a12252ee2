"""Functions run as Lambda runs them: each in processes of its own, with its Timeout, MemorySize and concurrency.

A `Worker` is one execution environment (a `python -m infra.local.invoker.worker` process; `protocol.py`):
one invocation at a time, kept warm between them. A `FunctionPool` holds up to `concurrency` of them per
function; an invocation beyond that waits for a free one (Lambda would throttle past reserved concurrency
with a 429, and an SQS event source would not poll more; waiting is the local stand-in for both).

An invocation past its Timeout, or whose process grows past MemorySize, is killed (SIGKILL), as Lambda does,
and raises `FunctionCrash`: a queue's batch stays undeleted (redelivered), the gateway answers 500. The next
invocation starts a fresh process (a cold start). Peak memory per invocation is the process's VmHWM, reset
before each invocation (Linux `clear_refs`).

- `runtime.py`: `LambdaRuntime`, every function's pool; `pool.py`: `FunctionPool`, one function's workers;
- `process.py`: `Worker`, one execution environment as the stack sees it; `worker.py`: the process itself;
- `protocol.py`: the frames between them; `spec.py`: what a function runs with, and how an invocation fails;
- `environment.py`: a function's environment and settings, from the template.
"""

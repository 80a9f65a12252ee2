"""The plumbing the local emulators (Replicate, Stripe) share: a loopback HTTP server, background work, lifecycle.

An emulator subclasses `LoopbackEmulator` (`loopback.py`): it names itself (threads, `Server` header, log line),
caps request bodies, shapes its own error bodies (`_error_reply`) and answers each request in `handle`; the plumbing
reads the body, refuses what is oversized or arrives after `stop()`, writes the `Reply`, and runs a timer thread plus
a few daemon workers (`Runner`, `runner.py`) so no HTTP thread ever waits on background work such as a webhook
delivery. `cli.py` holds the options every emulator's command line takes.
"""

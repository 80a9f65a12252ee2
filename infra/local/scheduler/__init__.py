"""The scheduler and the clock: the template's schedules fired on a clock that `POST /_local/clock` can move.

- `scheduler.py`: `Scheduler`, which fires the schedules that are due;
- `schedules.py`: a schedule's EventBridge event, and when a `rate()`/`cron()` fires next;
- `clock.py`: the stack's movable clock and its `/_local/clock` route.
"""

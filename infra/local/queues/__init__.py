"""The queues' event source mappings: pollers feeding each queue to its function, and crash faults for them.

- `pollers.py`: `QueuePollers`, Lambda's SQS event source mappings;
- `crashes.py`: a Lambda that dies before or after its handler, set with `PUT /_local/faults`.
"""

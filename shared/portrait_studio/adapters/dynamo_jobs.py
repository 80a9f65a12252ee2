"""JobStore on one DynamoDB table (single-table layout from DESIGN.md).

The store is put together from its parts, each a concern of its own:
- `dynamo_items`: the records as items (keys, index attributes, TTL, values DynamoDB can store);
- `dynamo_expressions`: condition and update expressions, and the transaction actions built from them;
- `dynamo_table`: the table, opened on first use, with its conditional update, transaction and pagination;
- `dynamo_job_reads`: every read (items by key, a job's files and slots, index queries, counting scans);
- `dynamo_job_writes`: writes to the job item and to its files;
- `dynamo_slot_writes`: writes to prediction slots;
- `dynamo_pacing`: rate limits and paced lines (items of their own, not under a job).
"""

from __future__ import annotations

from portrait_studio.adapters.dynamo_job_writes import DynamoFileWrites
from portrait_studio.adapters.dynamo_pacing import DynamoPacing
from portrait_studio.adapters.dynamo_slot_writes import DynamoSlotWrites

__all__ = ["DynamoJobStore"]


class DynamoJobStore(DynamoFileWrites, DynamoSlotWrites, DynamoPacing):
    """Every JobStore method (`ports.JobStore`); constructed as DynamoJobStore(table_name, resource_factory, clock)."""

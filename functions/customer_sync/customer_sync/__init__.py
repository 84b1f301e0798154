"""Pattern 3, Batch Data Synchronization: customers between Salesforce Accounts and the ERP, nightly.

``handler.start`` (EventBridge Scheduler, or on demand) takes the run lock and queues the run;
``handler.work`` (SQS) runs it phase by phase, checkpointing into DynamoDB and continuing itself through
the queue when its invocation runs short of time. The handlers parse; ``runs`` holds the lifecycle,
``engine`` the phases, and ``state``, ``steps``, ``report``, ``salesforce`` and ``erp`` the outside systems.
See docs/batch-sync.md.
"""

"""The step queue: how a run continues. One message per step, ``{"run_id": ..., "step": n}``, on the sync's
own SQS queue (its DLQ and alarms watch every step; docs/batch-sync.md, "Why SQS for the continuation")."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge_kit.sqs import send_batch

from .events import StepMessage

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


class StepNotQueued(RuntimeError):
    """SQS did not take the step message (after the edge kit's retries): the start or hand-over fails loudly."""


class StepQueue:
    def __init__(self, sqs: SQSClient, queue_url: str):
        self.sqs = sqs
        self.queue_url = queue_url

    def send(self, run_id: str, step: int) -> None:
        body = StepMessage(run_id=run_id, step=step).model_dump_json()
        if send_batch(self.sqs, self.queue_url, [{"Id": "step", "MessageBody": body}]):
            raise StepNotQueued(f"step {step} of run {run_id} could not be sent to the sync queue")

"""The request's latency budget: the layer's ``Budget`` (the edge kit's deadline type), built from seconds.

Kept only so that ``Deadline(seconds)`` keeps working where it is built; new code takes
``edge_kit.outside_http.invocation_deadline(context, budget_seconds=...)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from salesforce_access.budget import Budget


class Deadline(Budget):
    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic):
        super().__init__(clock() + max(seconds, 0.0), clock)

    def expired(self) -> bool:
        return self.remaining() <= 0.0

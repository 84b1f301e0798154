"""The Docker-free local stack: template.yaml's functions, APIs, queues, rules and schedules on a laptop.

    with LocalStack() as stack:
        url = f"{stack.api_url}/products/SKU-1001/availability"
        requests.get(url, headers=stack.iam_headers("GET", url))
        stack.invoke("AvailabilityFunction", event)
        stack.wait_idle()

``python -m local up`` runs it until Ctrl-C; docs/local-stack.md explains what is emulated and what is not.
"""

from .runtime import InvocationResult
from .stack import LocalStack
from .template import StackModel, read_template

__all__ = ["InvocationResult", "LocalStack", "StackModel", "read_template"]

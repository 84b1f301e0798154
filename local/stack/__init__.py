"""The Docker-free local stack: template.yaml's functions, APIs, queues, rules and schedules on a laptop.

    with LocalStack() as stack:
        requests.get(f"{stack.api_url}/products/SKU-1001/availability", headers=stack.iam_headers())
        stack.invoke("AvailabilityFunction", event)
        stack.wait_idle()

``python -m local up`` runs it until Ctrl-C; docs/local-stack.md explains what is emulated and what is not.
"""

"""The edge kit: what every function does at its edge, written once for all of them.

- ``settings``: one settings pattern (a pydantic model read from environment variables).
- ``http_api``: one JSON error envelope and the request-body rules of every HTTP API.
- ``signatures``: HMAC request signatures, verified as resolver middleware.
- ``sqs``: dead-letter with a reason, one redelivery backoff, batch sends with partial retry.
- ``outside_http``: the client base for outside systems (ERP, billing): key reader, retries, deadline timeouts.

Each module imports only what it needs, so a function pays at cold start for the parts it uses.
"""

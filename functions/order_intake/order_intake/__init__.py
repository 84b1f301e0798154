"""Pattern 4, Remote Call-In: the e-commerce platform pushes orders into Salesforce.

`api.handler` serves API Gateway (POST /orders synchronously, POST /orders/async onto SQS); `worker.handler`
drains that queue in batches. Both share the validation (`models`), the idempotency ledger (`ledger`) and the
Salesforce adapter (`salesforce`), orchestrated by `service`.
"""

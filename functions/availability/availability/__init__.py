"""Pattern 1, Request and Reply: product availability from the ERP, for Salesforce, within a latency budget.

handler (API Gateway, Powertools resolver) -> service (cache, circuit breaker, stale-if-error) -> erp (the ERP
adapter: the one module to change for another ERP). docs/request-reply.md describes the whole pattern.
"""

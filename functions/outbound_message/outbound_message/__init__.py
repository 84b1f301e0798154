"""Fire and Forget (pattern 2): the endpoint for Salesforce Outbound Messages about signed contracts."""

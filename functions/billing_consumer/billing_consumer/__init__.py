"""Fire and Forget (pattern 2): the SQS consumer that opens a billing account for each signed contract."""

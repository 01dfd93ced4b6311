"""`canvas-events sqs-relay`: Canvas Live Events from an AWS SQS queue to the receiver's Pub/Sub topic.

plan.py holds the decisions (pure), relay.py the I/O, main.py the command line. Needs boto3
(the ``sqs`` extra), which neither the receiver nor the Dataflow workers install.
"""

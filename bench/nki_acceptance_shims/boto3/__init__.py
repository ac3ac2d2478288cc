"""Stand-in for boto3 (S3/SQS uploads of test artifacts; unused in simulation mode)."""


def client(*args, **kwargs):
    raise RuntimeError("boto3 is not available in the trnsim acceptance run (no AWS services)")


class Session:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("boto3 is not available in the trnsim acceptance run (no AWS services)")

"""Stand-in for fabric2 (ssh to remote Trainium hosts; unused in simulation mode)."""


class Connection:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("no remote Trainium hosts in the trnsim acceptance run")


class Result:
    pass

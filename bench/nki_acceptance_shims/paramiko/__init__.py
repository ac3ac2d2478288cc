"""Stand-in for paramiko (ssh to remote Trainium hosts; unused in simulation mode)."""


class SSHException(Exception):
    pass

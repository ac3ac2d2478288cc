class BotoCoreError(Exception):
    pass


class ClientError(Exception):
    pass


class NoCredentialsError(BotoCoreError):
    pass

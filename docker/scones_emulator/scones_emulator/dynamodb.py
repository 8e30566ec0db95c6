"""DynamoDB without Java: LocalStack's provider interface answered by moto's pure-Python backend.

LocalStack's own DynamoDB provider forwards every request to DynamoDB Local, a Java server whose
jar it downloads at first use, which cannot run offline. This provider (``dynamodb:scones``,
chosen by ``PROVIDER_OVERRIDE_DYNAMODB=scones``, which ``scones up`` sets) has no operations of
its own: LocalStack's ``MotoFallbackDispatcher`` sends each one to moto (the moto-ext that
LocalStack itself ships), which keeps tables per account and region in memory.

Gaps against AWS: what moto does not implement (its coverage list:
https://docs.getmoto.org/en/latest/docs/services/dynamodb.html); DynamoDB Streams are not wired
(LocalStack's ``dynamodbstreams`` reads DynamoDB Local); tables do not outlive the emulator;
PartiQL is py-partiql-parser's subset; capacity, throttling and TTL deletion are not enforced.
"""

from __future__ import annotations

from localstack.services.plugins import Service, aws_provider


@aws_provider(api="dynamodb", name="scones")
def dynamodb_moto() -> Service:
    """The ``dynamodb:scones`` provider: every operation answered by moto."""
    from localstack.aws.api.dynamodb import DynamodbApi
    from localstack.services.moto import MotoFallbackDispatcher

    class MotoDynamoDBProvider(DynamodbApi):
        """No overrides: MotoFallbackDispatcher routes every operation to moto."""

    return Service.for_provider(
        MotoDynamoDBProvider(), dispatch_table_factory=MotoFallbackDispatcher
    )

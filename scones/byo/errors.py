"""The errors of `scones import` / `scones execute`, one class per thing that can go wrong."""

from __future__ import annotations

from scones import SconesError, UsageError


class ByoError(SconesError):
    """An existing project cannot be imported or run as given."""


class DefinitionRejected(ByoError):
    """The state machine definition is one AWS's CreateStateMachine would refuse."""

    def __init__(self, message: str, diagnostics: list[str]) -> None:
        super().__init__(message)
        self.code = "InvalidDefinition"
        self.diagnostics = diagnostics


class ByoUsageError(ByoError, UsageError):
    """An option or file given to `scones import`/`execute` is unusable as given (exit code 2)."""


class UnmappedFunction(ByoUsageError):
    """A function the definition calls has no source file among those given."""


class ServiceUnavailable(ByoError):
    """The project uses an AWS service that cannot run on this machine."""


class NotImported(ByoError):
    """`scones execute` names a state machine that `scones import` has not deployed."""

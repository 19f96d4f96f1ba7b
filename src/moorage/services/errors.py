"""Errors of the management use cases (the registry protocol's own are in ``oci.errors``)."""

from __future__ import annotations


class ServiceError(Exception):
    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field  # the input field at fault, for forms and API clients


class NotFound(ServiceError):
    pass


class AlreadyExists(ServiceError):
    pass


class InvalidInput(ServiceError):
    pass


class Forbidden(ServiceError):
    pass


class Conflict(ServiceError):
    """The request is well-formed but the resource's current state does not allow it."""

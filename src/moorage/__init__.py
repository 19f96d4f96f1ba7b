"""Moorage: a secure, self-hosted OCI registry."""

__version__ = "0.1.0"

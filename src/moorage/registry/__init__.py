"""The OCI Distribution HTTP API (``/v2/``): protocol only, everything else in services."""

"""The JSON management API under ``/api/v1/`` (FastAPI), with its generated OpenAPI document."""

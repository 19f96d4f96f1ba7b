"""Blob stores: content-addressed bytes behind a narrow interface."""

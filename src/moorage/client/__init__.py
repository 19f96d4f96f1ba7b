"""Moorage's own OCI registry client (used by the app client and by mirroring)."""

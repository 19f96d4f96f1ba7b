"""Pure OCI core: digests, references, media types, manifest models. No I/O."""

"""Use cases. Each service takes its collaborators as constructor arguments."""

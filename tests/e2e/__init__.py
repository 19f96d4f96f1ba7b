"""End-to-end tests: a real ``moorage serve`` process driven by real clients."""

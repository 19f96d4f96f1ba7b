"""Page routes, one module per area; each exposes ``ROUTES`` (a list of Starlette routes)."""

"""The metadata database: SQLAlchemy Core tables, queries and Alembic migrations."""

"""Alembic migrations of the resource store, shipped inside the package."""

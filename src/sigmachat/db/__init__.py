"""Data layer: SQLAlchemy 2 async ORM models, engine/session factory and Alembic migrations."""

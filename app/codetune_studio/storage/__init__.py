"""SQLAlchemy tables, Alembic migrations, engine setup and repositories."""

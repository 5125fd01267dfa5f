"""Pure domain: models, events, errors. Imports neither Qt nor SQLAlchemy nor torch."""

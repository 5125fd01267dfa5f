"""Alembic migrations, shipped inside the package and applied by ``Database.upgrade``.

A package (not a bare folder) so that ``env.py`` is installed with the wheel; nothing imports it.
"""

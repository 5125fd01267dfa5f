"""``python -m codetune_studio``: the same entry point as the ``codetune-studio`` command."""

from codetune_studio.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

"""Use cases the window and the command line share. Plain Python, no Qt."""

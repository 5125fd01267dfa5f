"""The studio window: PySide6, pyqtgraph and superqt live here and nowhere else."""

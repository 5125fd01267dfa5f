"""Code-analysis plugins: the plugin API, the entry-point registry, isolation, the built-ins.

Plugin authors import :mod:`codetune_studio.plugins.api` only. Importing this package does
nothing else, so discovery stays cheap.
"""

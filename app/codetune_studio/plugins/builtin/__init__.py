"""The plugins that ship with the studio.

They register through the same entry-point group as third-party plugins: ``code_analyzer``,
``openai_code_analyzer`` and ``anthropic_code_suggester``.
"""

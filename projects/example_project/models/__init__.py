"""The example project's own parts, imported by its config through ``custom_imports``."""

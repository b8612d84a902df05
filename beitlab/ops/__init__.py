"""Tensor functions shared by models and checkpoint code; nothing here imports
``beitlab.models``."""

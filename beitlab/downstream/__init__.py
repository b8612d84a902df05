"""Adapters that register beitlab parts into mmseg's and mmdet's registries; loaded by those
configs through ``custom_imports`` (not by :func:`beitlab.utils.register_all_modules`)."""

"""models components; registered by :func:`beitlab.utils.register_all_modules`."""

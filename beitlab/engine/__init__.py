"""engine components; registered by :func:`beitlab.utils.register_all_modules`.

``BeitlabRunner`` (the strict-loading Runner of ``tools/train.py`` and ``tools/test.py``) is
exported here; it registers nothing."""
from .runner import BeitlabRunner

__all__ = ['BeitlabRunner']

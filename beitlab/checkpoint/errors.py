"""The errors of the checkpoint package: keys that have no place, and a checkpoint whose
recorded architecture contradicts the model it is loaded into."""
from typing import Sequence

__all__ = ['CheckpointKeyError', 'BackboneMetaMismatchError']


class CheckpointKeyError(KeyError):
    """Unknown or missing keys in a checkpoint; ``unknown`` and ``missing`` list them."""

    def __init__(self, message: str, unknown: Sequence[str] = (), missing: Sequence[str] = ()):
        super().__init__(message)
        self.unknown = list(unknown)
        self.missing = list(missing)

    def __str__(self) -> str:
        return str(self.args[0])


class BackboneMetaMismatchError(ValueError):
    """``meta['backbone']`` of a converted checkpoint names another architecture than the
    backbone it is loaded into; ``differences`` maps each setting to ``(checkpoint, target)``."""

    def __init__(self, message: str, differences: dict):
        super().__init__(message)
        self.differences = dict(differences)

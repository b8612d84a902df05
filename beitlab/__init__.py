"""beitlab: BEiT-style masked image modeling on the OpenMMLab stack."""
from .version import __version__

__all__ = ['__version__']

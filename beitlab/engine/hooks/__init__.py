"""engine hooks components; registered by :func:`beitlab.utils.register_all_modules`.

``AtomicCheckpointHook`` (the checkpoint hook of every config, ``docs/reliability.md``) is
exported here."""
from .atomic_checkpoint_hook import AtomicCheckpointHook

__all__ = ['AtomicCheckpointHook']

"""Utilities: registration, atomic files, config checks (checkpoint reading is in
:mod:`beitlab.checkpoint`)."""
from .atomic_io import atomic_torch_save, atomic_write_bytes, check_output_path
from .config_check import UnknownTypeError, check_config_types
from .resume import find_resume_checkpoint
from .runtime import prepare_config, shutdown_distributed
from .setup_env import register_all_modules

__all__ = [
    'register_all_modules', 'check_config_types', 'UnknownTypeError', 'prepare_config',
    'shutdown_distributed', 'atomic_write_bytes', 'atomic_torch_save', 'check_output_path',
    'find_resume_checkpoint'
]

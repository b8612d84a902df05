"""Utilities: registration, safe checkpoint loading, config checks."""
from .atomic_io import atomic_torch_save, atomic_write_bytes, check_output_path
from .checkpoint import UnsafeCheckpointError, install_safe_checkpoint_loading, safe_torch_load
from .config_check import UnknownTypeError, check_config_types
from .resume import find_resume_checkpoint
from .runtime import prepare_config, shutdown_distributed
from .setup_env import register_all_modules

__all__ = [
    'register_all_modules', 'install_safe_checkpoint_loading', 'safe_torch_load',
    'UnsafeCheckpointError', 'check_config_types', 'UnknownTypeError', 'prepare_config',
    'shutdown_distributed', 'atomic_write_bytes', 'atomic_torch_save', 'check_output_path',
    'find_resume_checkpoint'
]

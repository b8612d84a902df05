"""Utilities: registration, safe checkpoint loading, config checks."""
from .checkpoint import UnsafeCheckpointError, install_safe_checkpoint_loading, safe_torch_load
from .config_check import UnknownTypeError, check_config_types
from .runtime import prepare_config, shutdown_distributed
from .setup_env import register_all_modules

__all__ = [
    'register_all_modules', 'install_safe_checkpoint_loading', 'safe_torch_load',
    'UnsafeCheckpointError', 'check_config_types', 'UnknownTypeError', 'prepare_config',
    'shutdown_distributed'
]

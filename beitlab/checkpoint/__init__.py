"""Everything about checkpoint files, in one package; nothing here imports ``beitlab.models``.

- :mod:`~beitlab.checkpoint.io`: safe reading (``weights_only=True``, or ``.safetensors``)
  and atomic writing of checkpoint files;
- :mod:`~beitlab.checkpoint.unwrap`: the one rule that finds the state dict in a file, and
  prefix selection;
- :mod:`~beitlab.checkpoint.layouts`: other libraries' layouts (official BEiT, ...) to and
  from beitlab's, by name;
- :mod:`~beitlab.checkpoint.model_state`: a file's weights with the names of the model
  they are loaded into (``load_from``, ``init_cfg``, frozen networks, the Python API);
- :mod:`~beitlab.checkpoint.pretrained`: a pre-trained backbone for fine-tuning, with the
  transfer rules;
- :mod:`~beitlab.checkpoint.backbone_adapt`: the copying and resizing of position tables
  when weights meet a backbone of another layout or grid;
- :mod:`~beitlab.checkpoint.meta`: the architecture a converted file records, checked at load.

The strict comparison of a state dict with a module lives in :mod:`beitlab.utils.strict_load`.
"""
from .errors import BackboneMetaMismatchError, CheckpointKeyError
from .io import (
    CorruptCheckpointError,
    UnsafeCheckpointError,
    install_safe_checkpoint_loading,
    load_checkpoint_file,
    safe_torch_load,
    save_checkpoint_file,
)
from .unwrap import WRAPPER_KEYS, checkpoint_meta, select_prefix, unwrap_state_dict

__all__ = [
    'CheckpointKeyError', 'BackboneMetaMismatchError', 'CorruptCheckpointError',
    'UnsafeCheckpointError', 'install_safe_checkpoint_loading', 'load_checkpoint_file',
    'safe_torch_load', 'save_checkpoint_file', 'WRAPPER_KEYS', 'checkpoint_meta',
    'select_prefix', 'unwrap_state_dict'
]

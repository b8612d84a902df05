"""DDP for CPU processes (gloo), so that ``tools/dist_train.sh CONFIG 2`` runs
on a machine without a GPU."""
from typing import Any

from mmengine.model import MMDistributedDataParallel
from torch import nn

from beitlab.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """mmengine's ``MMDistributedDataParallel`` without ``device_ids``.

    The Runner always passes ``device_ids=[LOCAL_RANK]``, which torch's DDP rejects
    for a module whose parameters live on the CPU; gradients are all-reduced over
    gloo instead.
    """

    def __init__(self, module: nn.Module, **kwargs: Any) -> None:
        kwargs.pop('device_ids', None)
        kwargs.pop('output_device', None)
        super().__init__(module=module, **kwargs)

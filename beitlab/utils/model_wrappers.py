"""The algorithm inside the wrappers a model may run in."""
from mmengine.model import is_model_wrapper
from torch import nn

__all__ = ['unwrap_model']


def unwrap_model(model: nn.Module) -> nn.Module:
    """The algorithm inside any model wrappers (DDP, beitlab's CPU DDP, anything in
    mmengine's ``MODEL_WRAPPERS``) and ``torch.compile`` wrappers (``OptimizedModule``)."""
    while True:
        if is_model_wrapper(model):
            model = model.module
        elif isinstance(getattr(model, '_orig_mod', None), nn.Module):  # torch.compile(model)
            model = model._orig_mod
        else:
            return model

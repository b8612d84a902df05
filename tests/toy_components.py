"""A toy model and dataset for the runtime tests (loaded through ``custom_imports``)."""
import torch
from mmengine.dataset import BaseDataset
from mmengine.model import BaseModel
from torch import nn

from beitlab.registry import DATASETS, MODELS


@MODELS.register_module()
class ToyRegressor(BaseModel):
    """y = w x + b fitted with MSE; enough to exercise the Runner."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 1)

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor, mode: str = 'tensor', **meta):
        inputs = torch.stack(list(inputs)) if isinstance(inputs, (list, tuple)) else inputs
        targets = torch.stack(list(targets)) if isinstance(targets, (list, tuple)) else targets
        pred = self.linear(inputs)
        if mode == 'loss':
            return {'loss': ((pred - targets) ** 2).mean()}
        return pred


@DATASETS.register_module()
class ToyRegressionDataset(BaseDataset):
    """64 fixed random (x, y) pairs."""

    def __init__(self, **kwargs) -> None:
        super().__init__(serialize_data=False, lazy_init=False, **kwargs)

    def load_data_list(self) -> list:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(64, 4, generator=gen)
        y = x.sum(dim=1, keepdim=True)
        return [dict(inputs=x[i], targets=y[i]) for i in range(64)]

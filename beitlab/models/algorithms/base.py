"""The base of every beitlab algorithm: parts from configs, mode dispatch, data-sample masks.

:class:`BaseAlgorithm` is an mmengine ``BaseModel`` whose
``forward(inputs, data_samples, mode)`` runs ``loss``, ``predict`` or ``forward_tensor``
(one error, naming the modes the algorithm has, for any other mode) and whose data
preprocessor is built from beitlab's registry whatever the default scope.
:class:`MIMAlgorithm` adds what every masked-image-modeling algorithm (BEiT, BEiT v2, MAE,
SimMIM, MaskFeat) shares: ``backbone``, ``head`` and a frozen ``target_generator``, the ViT
view of the inputs and the masks of the data samples. Neither class is registered.
"""
import copy
from typing import ClassVar, Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModel
from mmengine.registry import Registry
from torch import Tensor, nn

from beitlab.registry import MODELS, TARGET_GENERATORS

__all__ = ['MODES', 'build_part', 'BaseAlgorithm', 'MIMAlgorithm']

MODES: Tuple[str, ...] = ('loss', 'predict', 'tensor')

PartCfg = Union[dict, nn.Module, None]


def build_part(cfg: PartCfg, registry: Registry = MODELS) -> Optional[nn.Module]:
    """A part given as a config dict is built from ``registry``; a module (or None) is taken
    as is."""
    if cfg is None or isinstance(cfg, nn.Module):
        return cfg
    return registry.build(cfg)


class BaseAlgorithm(BaseModel):
    """``forward(inputs, data_samples=None, mode='tensor')`` for every algorithm.

    ``'loss'`` -> :meth:`loss` (``dict[str, Tensor]``), ``'predict'`` -> :meth:`predict`
    (data samples), ``'tensor'`` -> :meth:`forward_tensor`; each is called as
    ``(inputs, data_samples)``. A subclass lists the modes it has in ``modes``; any other
    mode is a ``ValueError`` naming them.

    Args:
        data_preprocessor: config or module; None takes the class's
            ``default_data_preprocessor`` (mmengine's ``BaseDataPreprocessor`` when that is
            None too).
        init_cfg: mmengine init config.
    """

    modes: ClassVar[Tuple[str, ...]] = MODES
    default_data_preprocessor: ClassVar[Optional[dict]] = None

    def __init__(self, data_preprocessor: PartCfg = None, init_cfg: Optional[dict] = None) -> None:
        if data_preprocessor is None:
            data_preprocessor = copy.deepcopy(self.default_data_preprocessor)
        super().__init__(data_preprocessor=build_part(data_preprocessor), init_cfg=init_cfg)

    def forward(self, inputs, data_samples: Optional[list] = None, mode: str = 'tensor'):
        """Dispatch on ``mode``, one of :attr:`modes`."""
        if mode not in self.modes:
            raise ValueError(f'{type(self).__name__}.forward: mode={mode!r} is not one of '
                             f'{self.modes}')
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        return self.forward_tensor(inputs, data_samples)

    def loss(self, inputs, data_samples: Optional[list] = None) -> dict:
        """Training losses ``dict[str, Tensor]``."""
        raise NotImplementedError

    def predict(self, inputs, data_samples: Optional[list] = None) -> list:
        """Data samples filled with predictions."""
        raise NotImplementedError

    def forward_tensor(self, inputs, data_samples: Optional[list] = None):
        """The network's raw output (what ``mode='tensor'`` returns)."""
        raise NotImplementedError


class MIMAlgorithm(BaseAlgorithm):
    """A masked-image-modeling algorithm: a ViT ``backbone``, a ``head`` and a frozen
    ``target_generator``.

    Args:
        backbone: MODELS config or module (``BEiTViT``; the attribute name ``backbone``
            makes parameter names ``backbone.<official name>``).
        head: MODELS config or module.
        target_generator: TARGET_GENERATORS config or module, frozen here; None takes
            :meth:`default_target_generator` (built after the backbone).
        data_preprocessor, init_cfg: as :class:`BaseAlgorithm`.
    """

    def __init__(self, backbone: PartCfg, head: PartCfg, target_generator: PartCfg = None,
                 data_preprocessor: PartCfg = None, init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        # backbone, target, head: under a seed, this order fixes the random numbers each
        # part's initialisation draws
        self.backbone = build_part(backbone)
        if target_generator is None:
            target_generator = self.default_target_generator()
        self.target_generator = build_part(target_generator, TARGET_GENERATORS)
        if self.target_generator is None:
            raise ValueError(f'{type(self).__name__} needs a target_generator')
        self.target_generator.requires_grad_(False)
        self.head = build_part(head)

    def default_target_generator(self) -> Optional[dict]:
        """The target config used when none is given (called once the backbone is built)."""
        return None

    @staticmethod
    def image_view(inputs: Union[Tensor, Sequence[Tensor]]) -> Tensor:
        """The ViT view ``[B, C, H, W]``: ``inputs`` itself or ``inputs[0]`` of a two-view batch."""
        if isinstance(inputs, (list, tuple)):
            return inputs[0]
        return inputs

    def stack_masks(self, data_samples: Optional[Sequence], device: torch.device,
                    required: bool = True) -> Optional[Tensor]:
        """``data_samples[i].mask`` (``[H/P, W/P]`` bool, numpy or tensor, True = masked)
        -> ``[B, H/P, W/P]`` bool on ``device``.

        Without any mask the result is None when not ``required``; a required mask that
        is missing, or masks on some samples only, raise a ``KeyError`` naming the key and
        the transforms that make it.
        """
        samples = list(data_samples or [])
        missing = [i for i, s in enumerate(samples) if getattr(s, 'mask', None) is None]
        if not samples or missing:
            if not required and len(missing) == len(samples):
                return None
            found = 'no data samples were given' if not samples else \
                f'{len(missing)} of {len(samples)} samples have none (indices {missing[:8]})'
            raise KeyError(f'{type(self).__name__} needs data_samples[i].mask ([H/P, W/P] bool, '
                           f'True = masked) in every sample, but {found}; put GenerateMask '
                           '(mask_generator=...) before PackTwoViewInputs in the data pipeline')
        return torch.stack([torch.as_tensor(s.mask) for s in samples]).to(device).bool()

    def extract_feat(self, inputs: Union[Tensor, Sequence[Tensor]],
                     mask: Optional[Tensor] = None) -> Tensor:
        """Tokens ``[B, E + N, D]`` (E = ``backbone.num_extra_tokens``) after the last layer and
        the final norm, of the ViT view with the patches of ``mask`` ``[B, H/P, W/P]`` bool
        replaced by ``[MASK]`` (the intact image when None)."""
        return self.backbone.forward_features(self.image_view(inputs), mask)

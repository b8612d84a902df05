"""Image classifier for fine-tuning a (pre-trained) BEiT backbone (BEiT Sec. 2.6)."""
from typing import List, Optional, Sequence, Union

from mmengine.structures import BaseDataElement
from torch import Tensor, nn

from beitlab.registry import MODELS
from beitlab.utils.strict_load import Allowance, AllowHint

from .base import BaseAlgorithm, build_part

__all__ = ['ImageClassifier']


@MODELS.register_module()
class ImageClassifier(BaseAlgorithm):
    """Backbone + classification head (BEiT Sec. 2.6: the MIM head is replaced by a linear head).

    Args:
        backbone: config or module; must return a tuple whose last entry is ``[B, D]``
            (``out_type='cls_token'`` or ``'avg_featmap'``).
        head: config or module (:class:`~beitlab.models.heads.cls_head.ClsHead`).
        pretrained: checkpoint loaded into the backbone by :meth:`init_weights` through
            :func:`beitlab.checkpoint.pretrained.load_pretrained_backbone` (a beitlab MIM or an official
            BEiT checkpoint; shared rel-pos bias copied per layer, grids interpolated, the MIM
            head dropped). None: the backbone keeps its own init.
        pretrained_prefix: prefix of backbone keys in that checkpoint (``'backbone.'`` for
            beitlab checkpoints; official files are detected automatically).
        pretrained_allow: differences that may pass when loading ``pretrained`` (the load is
            strict otherwise): ``dict(missing=[...], unexpected=[...], shape_mismatch=[...])``
            of backbone key patterns (glob, or ``'re:'`` + regex).
        data_preprocessor: config or module (default ``ClsDataPreprocessor``).
    """

    default_data_preprocessor = dict(type='ClsDataPreprocessor')

    def __init__(self, backbone: Union[dict, nn.Module] = dict(type='BEiTViT'),
                 head: Union[dict, nn.Module] = dict(type='ClsHead'),
                 pretrained: Optional[str] = None, pretrained_prefix: str = 'backbone.',
                 pretrained_allow: Optional[dict] = None,
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = build_part(backbone)
        self.head = build_part(head)
        self.pretrained = pretrained
        self.pretrained_prefix = pretrained_prefix
        self.pretrained_allow = Allowance.from_config(pretrained_allow, 'model.pretrained_allow')
        self.pretrained_report: Optional[dict] = None

    def init_weights(self) -> None:
        """Init every part, then load ``pretrained`` into the backbone (once, at training start)."""
        super().init_weights()
        if self.pretrained:
            from beitlab.checkpoint.pretrained import load_pretrained_backbone
            a = self.pretrained_allow
            self.pretrained_report = load_pretrained_backbone(
                self.backbone, self.pretrained, prefix=self.pretrained_prefix,
                allow_missing=a.missing, allow_unexpected=a.unexpected,
                allow_shape_mismatch=a.shape_mismatch,
                allow_hint=AllowHint('model.pretrained_allow = dict({}) in the config'))

    def extract_feat(self, inputs: Tensor) -> tuple:
        """``inputs: [B, 3, H, W]`` -> backbone outputs (tuple)."""
        return self.backbone(inputs)

    def forward_tensor(self, inputs: Tensor,
                       data_samples: Optional[List[BaseDataElement]] = None) -> Tensor:
        """Logits ``[B, C]`` (mode ``'tensor'``; ``'loss'`` -> dict, ``'predict'`` -> data samples)."""
        return self.head(self.extract_feat(inputs))

    def loss(self, inputs: Tensor, data_samples: Sequence[BaseDataElement]) -> dict:
        """Cross-entropy of the head (soft targets after Mixup/CutMix)."""
        return self.head.loss(self.extract_feat(inputs), data_samples)

    def predict(self, inputs: Tensor,
                data_samples: Optional[Sequence[BaseDataElement]] = None
                ) -> Sequence[BaseDataElement]:
        """Adds ``pred_score [C]`` and ``pred_label [1]`` to every data sample."""
        return self.head.predict(self.extract_feat(inputs), data_samples)

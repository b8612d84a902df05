"""VQ-KD: the vector-quantized knowledge-distillation tokenizer of BEiT v2.

Peng et al., "BEiT v2: Masked Image Modeling with Vector-Quantized Visual
Tokenizers" (2022), Sec. 2.1: a ViT encoder maps the image to per-patch vectors,
each is looked up in an l2-normalised codebook (cosine nearest neighbour, EMA
codebook updates, Eq. 1-2), and a ViT decoder reconstructs from the quantized
vectors the features of a frozen teacher, trained with a cosine-similarity loss
(Eq. 3) plus the commitment term. Its token ids are the MIM target of BEiT v2.

The paper's teacher is CLIP; here it is any registered backbone loaded from a
beitlab checkpoint (e.g. the Fashion-MNIST BEiT or a fine-tuned classifier),
since no hub weights can be fetched.
"""
from typing import Dict, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from beitlab.registry import MODELS, TOKENIZERS
from beitlab.utils.frozen_network import FrozenNetworkMixin, build_frozen_network

from .base import BaseTokenizer
from .quantizer import VectorQuantizer

__all__ = ['VQKD']


def _with_default_type(cfg: dict, default: str = 'BEiTViT') -> dict:
    """Sub-network configs may leave out ``type`` (default ``BEiTViT``)."""
    return dict(dict(type=default), **cfg)


def _task_layer(in_dims: int, out_dims: int) -> nn.Sequential:
    """``Linear -> Tanh -> Linear``, the encode/decode task layers of official VQ-KD."""
    return nn.Sequential(nn.Linear(in_dims, in_dims), nn.Tanh(), nn.Linear(in_dims, out_dims))


@TOKENIZERS.register_module()
class VQKD(FrozenNetworkMixin, BaseTokenizer):
    """BEiT v2 tokenizer: ``img [B, 3, h, w] in [0, 1] -> tokens [B, h/P, w/P]``.

    Sub-network configs (``encoder``, ``decoder``, ``teacher``) may leave out ``type``,
    which then defaults to ``BEiTViT``.

    Args:
        encoder: ``BEiTViT`` config; its patch size is the tokenizer's ``downsample``.
        decoder: ``BEiTViT`` config run on the quantized map (``patch_size=1``,
            ``in_channels=embed_dim``, ``img_size`` = the token grid); ``None``
            builds a 1-layer decoder of the encoder's width.
        teacher: MODELS backbone config whose ``forward`` returns a tuple ending with
            a feature map ``[B, C_t, h/P, w/P]`` (BEiTViT with ``out_type='featmap'``).
            Only needed to train; a frozen tokenizer may leave it None.
        teacher_checkpoint: file the teacher is loaded from, strictly (every tensor of the
            teacher, each of its shape: a difference raises ``StrictLoadError`` with one
            table); None keeps its random initialisation, only sensible in tests.
        teacher_prefix: key prefix of the teacher in that file (``'backbone.'``).
        teacher_dims: width C_t of the teacher features (default: its ``embed_dims``).
        vocab_size: codebook size K (8192 in the paper).
        embed_dim: code dimension (32 in the paper).
        beta: commitment weight (1.0 in official VQ-KD).
        ema_decay: codebook EMA decay (0.99).
        quantizer: extra ``VectorQuantizer`` options (e.g. ``restart_unused_after``).
        img_mean, img_std: normalisation of the [0, 1] input for the encoder.
        teacher_mean, teacher_std: normalisation of the [0, 1] input for the
            teacher (what its own training used, divided by 255).
        checkpoint, frozen, bf16, init_cfg: see :class:`BaseTokenizer`.
    """

    def __init__(self,
                 encoder: dict,
                 decoder: Optional[dict] = None,
                 teacher: Optional[Union[dict, nn.Module]] = None,
                 teacher_checkpoint: Optional[str] = None,
                 teacher_prefix: str = 'backbone.',
                 teacher_dims: Optional[int] = None,
                 vocab_size: int = 8192,
                 embed_dim: int = 32,
                 beta: float = 1.0,
                 ema_decay: float = 0.99,
                 quantizer: Optional[dict] = None,
                 img_mean: Sequence[float] = (0.5, 0.5, 0.5),
                 img_std: Sequence[float] = (0.5, 0.5, 0.5),
                 teacher_mean: Sequence[float] = (0.5, 0.5, 0.5),
                 teacher_std: Sequence[float] = (0.5, 0.5, 0.5),
                 checkpoint: Optional[str] = None,
                 frozen: Optional[bool] = None,
                 bf16: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        encoder = dict(_with_default_type(encoder), out_type='featmap', out_indices=-1)
        encoder_net = MODELS.build(encoder)
        super().__init__(vocab_size, encoder_net.patch_size, checkpoint, frozen, bf16, init_cfg)
        self.encoder = encoder_net
        D = self.encoder.embed_dims
        self.grid = self.encoder.grid
        self.encode_task_layer = _task_layer(D, embed_dim)
        # official VQ-KD codebook update (beit2/norm_ema_quantizer.py) unless overridden
        quantizer = dict(dict(ema_rule='norm_ema'), **(quantizer or {}))
        self.quantizer = VectorQuantizer(vocab_size, embed_dim, beta=beta, ema_decay=ema_decay,
                                         l2_normalize=True, **quantizer)
        if decoder is None:
            decoder = dict(arch=dict(embed_dims=D, num_layers=1, num_heads=self.encoder.num_heads,
                                     feedforward_channels=self.encoder.feedforward_channels))
        decoder = dict(_with_default_type(decoder), img_size=self.grid, patch_size=1,
                       in_channels=embed_dim,
                       out_type='featmap', out_indices=-1)
        self.decoder = MODELS.build(decoder)

        # The teacher is needed only to train: a frozen tokenizer skips building it.
        if isinstance(teacher, dict):
            teacher = _with_default_type(teacher)
        teacher_net = None
        if teacher is not None and not self.frozen:
            teacher_net = build_frozen_network(
                teacher, teacher_checkpoint, teacher_prefix, role='VQKD teacher',
                hints=['the teacher config must build the network the checkpoint holds under '
                       'teacher_prefix (same arch, img_size, patch_size, position embedding '
                       'and bias flags, layer scale, final norm)'])
        self.set_frozen('teacher', teacher_net)
        if teacher_dims is None:
            if teacher is None:
                raise ValueError('VQKD: give teacher (a backbone config) or teacher_dims')
            # a frozen tokenizer builds the teacher's architecture only to read its width
            probe = teacher_net if teacher_net is not None else (
                MODELS.build(teacher) if isinstance(teacher, dict) else teacher)
            teacher_dims = getattr(probe, 'embed_dims', None)
            if teacher_dims is None:
                raise ValueError(f'VQKD: cannot read embed_dims from the teacher '
                                 f'{type(probe).__name__}; set teacher_dims')
        self.teacher_dims = int(teacher_dims)
        self.decode_task_layer = _task_layer(self.decoder.embed_dims, self.teacher_dims)

        for name, values in (('img_mean', img_mean), ('img_std', img_std),
                             ('teacher_mean', teacher_mean), ('teacher_std', teacher_std)):
            self.register_buffer(name, torch.tensor(values, dtype=torch.float32).view(1, -1, 1, 1),
                                 persistent=False)
        self._finish_init()

    # ------------------------------------------------------------------ steps
    def encode(self, img: Tensor) -> Tensor:
        """img [B, 3, h, w] in [0, 1] -> z_e [B, embed_dim, h/P, w/P] (not yet normalised)."""
        if img.shape[-2:] != torch.Size(self.encoder.img_size):
            raise ValueError(f'VQKD: input {tuple(img.shape)} does not match the encoder '
                             f'img_size={self.encoder.img_size}')
        with self.autocast(img):
            feat = self.encoder((img - self.img_mean) / self.img_std)[-1]  # [B, D, h, w]
            z = self.encode_task_layer(feat.permute(0, 2, 3, 1))  # [B, h, w, e]
        return z.permute(0, 3, 1, 2).float().contiguous()

    def decode(self, z_q: Tensor) -> Tensor:
        """z_q [B, embed_dim, h, w] -> reconstructed teacher features [B, h*w, C_t]."""
        feat = self.decoder(z_q)[-1]  # [B, Dd, h, w]
        return self.decode_task_layer(feat.flatten(2).transpose(1, 2))

    @torch.no_grad()
    def teacher_features(self, img: Tensor) -> Tensor:
        """Frozen teacher's patch features [B, h*w, C_t] of img in [0, 1]."""
        if self.teacher is None:
            raise ValueError('VQKD: no teacher; set teacher (and teacher_checkpoint) to train')
        feat = self.teacher((img - self.teacher_mean) / self.teacher_std)
        feat = feat[-1] if isinstance(feat, (tuple, list)) else feat
        if feat.dim() != 4 or tuple(feat.shape[-2:]) != tuple(self.grid):
            raise ValueError(f'VQKD: the teacher must return a feature map [B, C, {self.grid[0]}, '
                             f'{self.grid[1]}] (BEiTViT with out_type="featmap" and the same '
                             f'patch grid); got {tuple(feat.shape)}')
        return feat.flatten(2).transpose(1, 2).float()

    def _get_tokens(self, img: Tensor) -> Tensor:
        z = F.normalize(self.encode(img), dim=1)
        B, e, h, w = z.shape
        return self.quantizer.nearest_codes(z.permute(0, 2, 3, 1).reshape(-1, e)).view(B, h, w)

    def forward(self, img: Tensor) -> Dict[str, Tensor]:
        """Encode, quantize (cosine, EMA), decode: ``rec`` [B, N, C_t], ``tokens`` and terms."""
        out = self.quantizer(self.encode(img))
        return dict(rec=self.decode(out.z_q), tokens=out.indices,
                    loss_commitment=out.loss_commitment, usage=out.usage,
                    perplexity=out.perplexity)

    def loss(self, img: Tensor) -> Dict[str, Tensor]:
        """``loss_rec = 1 - cos(rec, teacher)`` averaged over patches (BEiT v2 Eq. 3), plus
        the commitment loss; ``usage`` / ``perplexity`` describe this batch's codes."""
        target = self.teacher_features(img)
        out = self(img)
        cos = F.cosine_similarity(out['rec'].float(), target, dim=-1)  # [B, N]
        return dict(loss_rec=(1 - cos).mean(), loss_commitment=out['loss_commitment'],
                    cosine=cos.mean().detach(), usage=out['usage'],
                    perplexity=out['perplexity'])

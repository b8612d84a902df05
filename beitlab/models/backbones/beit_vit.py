"""BEiT vision Transformer backbone (Bao et al., 2021, "BEiT: BERT Pre-Training of Image
Transformers", Sec. 2.2 and 2.5).

Patch embedding, ``[MASK]`` replacement of masked patches, CLS token, absolute and/or
relative position bias, pre-LayerNorm blocks with layer scale and stochastic depth.
Parameter names are exactly those of the official implementation (``microsoft/unilm``,
``beit/modeling_pretrain.py`` and ``modeling_finetune.py``), so official weights load 1:1.

The layers are in ``beit_layers.py``, the paths over a subset of tokens (masked-only last
layer, visible-only MAE encoder) in ``token_subset_paths.py``, the load-time state-dict
adaptation in :mod:`beitlab.checkpoint.backbone_adapt`.
"""
import math
from typing import Dict, List, Optional, Sequence, Set, Tuple, Union

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from beitlab.checkpoint.backbone_adapt import BackboneSpec, adapt_backbone_state
from beitlab.ops.relative_position import to_2tuple_grid
from beitlab.registry import MODELS

from .beit_layers import INIT_STD, LN_EPS, BEiTBlock, PatchEmbed
from .rel_pos_bias import RelativePositionBias
from .token_subset_paths import TokenSubsetPaths
from .window_attention import window_partition, window_unpartition

__all__ = ['BEiTViT']


@MODELS.register_module()
class BEiTViT(TokenSubsetPaths, BaseModule):
    """BEiT ViT encoder: ``H_0 = [E_CLS; E'_1..E'_N] + E_pos`` with ``E'_i = E_[MASK]`` for
    masked patches, then L pre-LN layers (BEiT Sec. 2.2, 2.3, 2.5).

    Args:
        arch: ``'tiny' | 'small' | 'base' | 'large'`` or a dict with ``embed_dims``,
            ``num_layers``, ``num_heads`` and ``feedforward_channels``.
        img_size: image size the position embedding / bias index are built for.
        patch_size: P.
        in_channels: C.
        out_indices: layers whose output is returned (negative counts from the end).
        out_type: ``'raw'`` [B, 1+N, D], ``'cls_token'`` [B, D], ``'featmap'``
            [B, D, H/P, W/P] or ``'avg_featmap'`` [B, D] (mean of patch tokens then
            ``fc_norm``; the final ``norm`` is then absent, like official
            ``use_mean_pooling``).
        use_abs_pos_emb: learnable 1D position embedding over 1+N positions.
        use_shared_rel_pos_bias: one relative position bias for all layers
            (``rel_pos_bias.relative_position_bias_table``, official pre-training).
        use_rel_pos_bias: one table per layer
            (``blocks.i.attn.relative_position_bias_table``, official fine-tuning).
        layer_scale_init_value: > 0 enables ``gamma_1``/``gamma_2`` at this value.
        qv_bias: q and v biases in attention (no k bias).
        drop_rate: dropout after position embedding, attention projection and FFN.
        drop_path_rate: stochastic depth of the last layer; rises linearly from 0.
        final_norm: LayerNorm ``norm`` after the last layer (not with ``avg_featmap``).
        with_cls_token: prepend the CLS token.
        with_mask_token: create the learnable ``[MASK]`` embedding ``mask_token``; only a
            backbone that masks its input needs it (pre-training). Fine-tuning and downstream
            configs set False, so their state dict is the official fine-tuning model's.
        frozen_stages: -1 freezes nothing; k >= 0 freezes the embeddings (patch, CLS,
            [MASK], position, shared relative bias) and the first k layers; k = L also
            the final norm.
        init_cfg: mmengine init config (e.g. ``Pretrained``); without it the official
            initialisation is used.
        window_size: > 0 restricts attention to ``window_size x window_size`` windows of
            the patch grid in every block not in ``global_attn_indexes`` (ViTDet Sec. 3,
            for large detection inputs): the grid is zero-padded to a multiple of the window
            and, as in ViTDet, padded keys are not masked (pick a window that divides the
            grid to avoid padding); the CLS token skips windowed blocks; a relative position
            bias is evaluated for the window grid. No parameter changes, so the same
            checkpoints load. 0 keeps global attention.
        global_attn_indexes: blocks that keep global attention when ``window_size > 0``
            (negative counts from the end; ViTDet: 2, 5, 8, 11 of 12).
        attn_impl: how attention with the relative position bias is computed, for every
            block: ``'auto'`` (default) picks per device, dtype and what autograd needs
            (on CPU under bf16 autocast when gradients are computed: the explicit
            ``q k^T + bias``, softmax, ``@ v``, which stays in bf16; otherwise
            ``scaled_dot_product_attention`` with the bias as its float mask); ``'sdpa'``
            or ``'explicit'`` force one form. Values and gradients agree up to rounding;
            :mod:`beitlab.ops.attention` has the measured choice.
    """

    arch_zoo: Dict[str, Dict[str, int]] = {
        'tiny': dict(embed_dims=192, num_layers=12, num_heads=3, feedforward_channels=768),
        'small': dict(embed_dims=384, num_layers=12, num_heads=6, feedforward_channels=1536),
        'base': dict(embed_dims=768, num_layers=12, num_heads=12, feedforward_channels=3072),
        'large': dict(embed_dims=1024, num_layers=24, num_heads=16, feedforward_channels=4096),
    }
    OUT_TYPES = ('raw', 'cls_token', 'featmap', 'avg_featmap')

    def __init__(self,
                 arch: Union[str, dict] = 'base',
                 img_size: Union[int, Tuple[int, int]] = 224,
                 patch_size: int = 16,
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = -1,
                 out_type: str = 'cls_token',
                 use_abs_pos_emb: bool = True,
                 use_shared_rel_pos_bias: bool = False,
                 use_rel_pos_bias: bool = False,
                 layer_scale_init_value: float = 0.0,
                 qv_bias: bool = True,
                 drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 final_norm: bool = True,
                 with_cls_token: bool = True,
                 with_mask_token: bool = True,
                 frozen_stages: int = -1,
                 init_cfg: Optional[Union[dict, List[dict]]] = None,
                 window_size: int = 0,
                 global_attn_indexes: Sequence[int] = (),
                 attn_impl: str = 'auto') -> None:
        super().__init__(init_cfg=init_cfg)
        if window_size < 0:
            raise ValueError(f'window_size={window_size} must be >= 0 (0 = global attention)')
        self.window_size = int(window_size)
        self.arch_settings = self._parse_arch(arch)
        self.embed_dims = self.arch_settings['embed_dims']
        self.num_layers = self.arch_settings['num_layers']
        self.num_heads = self.arch_settings['num_heads']
        self.feedforward_channels = self.arch_settings['feedforward_channels']

        self.img_size = to_2tuple_grid(img_size)
        self.patch_size = patch_size
        self.in_channels = in_channels
        if self.img_size[0] % patch_size or self.img_size[1] % patch_size:
            raise ValueError(f'img_size={self.img_size} is not divisible by '
                             f'patch_size={patch_size}')
        self.grid = (self.img_size[0] // patch_size, self.img_size[1] // patch_size)
        self.num_patches = self.grid[0] * self.grid[1]

        if out_type not in self.OUT_TYPES:
            raise ValueError(f'out_type={out_type!r} is not one of {self.OUT_TYPES}')
        if out_type == 'cls_token' and not with_cls_token:
            raise ValueError("out_type='cls_token' needs with_cls_token=True")
        self.out_type = out_type
        self.with_cls_token = with_cls_token
        self.num_extra_tokens = 1 if with_cls_token else 0

        D = self.embed_dims
        self.patch_embed = PatchEmbed(in_channels, D, patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D)) if with_cls_token else None
        self.mask_token = nn.Parameter(torch.zeros(1, 1, D)) if with_mask_token else None
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_extra_tokens + self.num_patches, D)) \
            if use_abs_pos_emb else None
        self.pos_drop = nn.Dropout(drop_rate)
        self.rel_pos_bias = RelativePositionBias(self.grid, self.num_heads) \
            if use_shared_rel_pos_bias else None

        dpr = torch.linspace(0, drop_path_rate, self.num_layers).tolist()
        self.blocks = nn.ModuleList([
            BEiTBlock(D, self.num_heads, self.feedforward_channels, qv_bias=qv_bias,
                      drop_rate=drop_rate, drop_path_rate=dpr[i],
                      layer_scale_init_value=layer_scale_init_value,
                      grid=self.grid if use_rel_pos_bias else None, attn_impl=attn_impl)
            for i in range(self.num_layers)
        ])

        self.final_norm = final_norm and out_type != 'avg_featmap'
        self.norm = nn.LayerNorm(D, eps=LN_EPS) if self.final_norm else None
        self.fc_norm = nn.LayerNorm(D, eps=LN_EPS) if out_type == 'avg_featmap' else None

        if isinstance(out_indices, int):
            out_indices = [out_indices]
        self.out_indices = []
        for index in out_indices:
            if not -self.num_layers <= index < self.num_layers:
                raise ValueError(f'out_indices entry {index} is out of range for '
                                 f'{self.num_layers} layers')
            self.out_indices.append(index % self.num_layers)
        global_ids = []
        for index in global_attn_indexes:
            if not -self.num_layers <= index < self.num_layers:
                raise ValueError(f'global_attn_indexes entry {index} is out of range for '
                                 f'{self.num_layers} layers')
            global_ids.append(index % self.num_layers)
        self.global_attn_indexes = tuple(global_ids)
        if not -1 <= frozen_stages <= self.num_layers:
            raise ValueError(f'frozen_stages={frozen_stages} must be in [-1, {self.num_layers}]')
        self.frozen_stages = frozen_stages

        self._official_init()
        self._freeze_stages()

    # ------------------------------------------------------------------ construction
    @classmethod
    def _parse_arch(cls, arch: Union[str, dict]) -> Dict[str, int]:
        if isinstance(arch, str):
            if arch not in cls.arch_zoo:
                raise KeyError(f'unknown BEiTViT arch {arch!r}; expected one of '
                               f'{sorted(cls.arch_zoo)} or a dict')
            return dict(cls.arch_zoo[arch])
        required = {'embed_dims', 'num_layers', 'num_heads', 'feedforward_channels'}
        if not isinstance(arch, dict) or set(arch) != required:
            raise ValueError(f'a custom arch must be a dict with exactly the keys '
                             f'{sorted(required)}, got {arch!r}')
        return {k: int(v) for k, v in arch.items()}

    def _official_init(self) -> None:
        """Official BEiT init: trunc-normal(0.02) for tokens and Linear/Conv weights, zero
        biases, LayerNorm 1/0, then attn.proj and mlp.fc2 weights of layer l divided by
        sqrt(2 l) (``fix_init_weight``)."""
        for token in (self.cls_token, self.mask_token, self.pos_embed):
            if token is not None:
                nn.init.trunc_normal_(token, std=INIT_STD)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.trunc_normal_(m.weight, std=INIT_STD)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        with torch.no_grad():
            for layer_id, block in enumerate(self.blocks, start=1):
                block.attn.proj.weight.div_(math.sqrt(2.0 * layer_id))
                block.mlp.fc2.weight.div_(math.sqrt(2.0 * layer_id))

    def init_weights(self) -> None:
        """The official init already ran in ``__init__``; an ``init_cfg`` (e.g.
        ``Pretrained``) is applied on top by mmengine."""
        super().init_weights()

    def _frozen_modules(self) -> List[nn.Module]:
        if self.frozen_stages < 0:
            return []
        modules: List[nn.Module] = [self.patch_embed, self.pos_drop]
        if self.rel_pos_bias is not None:
            modules.append(self.rel_pos_bias)
        modules.extend(self.blocks[:self.frozen_stages])
        if self.frozen_stages == self.num_layers:
            modules.extend(m for m in (self.norm, self.fc_norm) if m is not None)
        return modules

    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        for token in (self.cls_token, self.mask_token, self.pos_embed):
            if token is not None:
                token.requires_grad = False
        for m in self._frozen_modules():
            m.eval()
            for p in m.parameters():
                p.requires_grad = False

    def train(self, mode: bool = True) -> 'BEiTViT':
        super().train(mode)
        self._freeze_stages()
        return self

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:
        """Adapt a checkpoint of another layout before loading, as official BEiT
        fine-tuning does (:func:`beitlab.checkpoint.backbone_adapt.adapt_backbone_state`: a
        shared table copied into every layer's table when this model has per-layer tables
        only, a position embedding or bias table of another square grid interpolated to this
        grid, each change logged). The strict loaders of :mod:`beitlab.utils.strict_load`
        compare keys and shapes after this step, so what it adapts is never reported as a
        difference."""
        adapt_backbone_state(state_dict, prefix, BackboneSpec.of(self))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ------------------------------------------------------------------ forward
    def _check_mask(self, mask: Tensor, batch: int, grid: Tuple[int, int]) -> Tensor:
        """``mask: [B, H/P, W/P]`` (or flattened ``[B, N]``) bool -> ``[B, N]`` bool."""
        n = grid[0] * grid[1]
        if tuple(mask.shape) == (batch, ) + tuple(grid):
            mask = mask.flatten(1)
        elif tuple(mask.shape) != (batch, n):
            raise ValueError(f'mask of shape {tuple(mask.shape)} does not fit the input: expected '
                             f'[B, H/P, W/P] = {[batch, *grid]} (or [B, N] = {[batch, n]})')
        return mask.bool()

    def _input_grid(self, x: Tensor) -> Tuple[int, int]:
        """The patch grid ``(H/P, W/P)`` of ``x: [B, C, H, W]``, after checking channels,
        divisibility and (with an absolute position embedding) the grid it was built for."""
        _, c, h, w = x.shape
        if c != self.in_channels or h % self.patch_size or w % self.patch_size:
            raise ValueError(f'input of shape {tuple(x.shape)}: expected {self.in_channels} '
                             f'channels and H, W divisible by patch_size={self.patch_size}')
        grid = (h // self.patch_size, w // self.patch_size)
        if self.pos_embed is not None and grid != self.grid:
            raise ValueError(
                f'input grid {grid} (image {h}x{w}, patch {self.patch_size}) differs from the grid '
                f'{self.grid} the absolute position embedding was built for (img_size='
                f'{self.img_size}); build the backbone with that img_size or resize pos_embed with '
                f'beitlab.models.backbones.rel_pos_bias.resize_pos_embed')
        return grid

    def embed(self, x: Tensor, mask: Optional[Tensor] = None) -> Tuple[Tensor, Tuple[int, int]]:
        """Input sequence H_0 (BEiT Sec. 2.2; masked patches as in Sec. 2.3).

        Args:
            x: ``[B, C, H, W]``.
            mask: ``[B, H/P, W/P]`` bool, True = masked (row-major like the patches).
        Returns:
            tokens ``[B, 1+N, D]`` (``[B, N, D]`` without CLS) and the grid ``(H/P, W/P)``.
        """
        b = x.shape[0]
        grid = self._input_grid(x)
        tokens = self.patch_embed(x)  # [B, N, D]
        if mask is not None:
            if self.mask_token is None:
                raise ValueError('a mask was given to a BEiTViT built with with_mask_token=False; '
                                 'build it with with_mask_token=True to mask its input')
            mask = self._check_mask(mask, b, grid)
            tokens = torch.where(mask.unsqueeze(-1), self.mask_token.to(tokens.dtype), tokens)
        if self.cls_token is not None:
            tokens = torch.cat([self.cls_token.expand(b, -1, -1), tokens], dim=1)
        if self.pos_embed is not None:
            tokens = tokens + self.pos_embed
        return self.pos_drop(tokens), grid

    def _format_output(self, tokens: Tensor, grid: Tuple[int, int]) -> Tensor:
        if self.out_type == 'raw':
            return tokens
        if self.out_type == 'cls_token':
            return tokens[:, 0]
        patches = tokens[:, self.num_extra_tokens:]
        if self.out_type == 'featmap':
            b, _, d = patches.shape
            return patches.reshape(b, grid[0], grid[1], d).permute(0, 3, 1, 2).contiguous()
        return self.fc_norm(patches.mean(dim=1))  # avg_featmap

    def _windowed_block(self, block: BEiTBlock, tokens: Tensor, grid: Tuple[int, int],
                        window_bias: Optional[Tensor]) -> Tensor:
        """One block with attention inside ``window_size`` windows (ViTDet Sec. 3).

        ``tokens: [B, E + N, D]`` -> ``[B, E + N, D]``; the E extra tokens (CLS) pass
        unchanged. The block is token-wise apart from attention, so it runs unchanged on
        each window as a batch element ``[B * nW, ws * ws, D]``; ``window_bias`` is the
        shared bias for the window grid ``[heads, 1 + ws^2, 1 + ws^2]`` (the block drops its
        CLS row and column, windows have none) or None.
        """
        E, ws = self.num_extra_tokens, self.window_size
        patches = tokens[:, E:]
        b, n, d = patches.shape
        windows, pad_hw = window_partition(patches.view(b, grid[0], grid[1], d), ws)
        out = block(windows.flatten(1, 2), (ws, ws), window_bias)
        out = window_unpartition(out.view(-1, ws, ws, d), ws, pad_hw, grid).view(b, n, d)
        return torch.cat([tokens[:, :E], out], dim=1)

    def _layers(self, x: Tensor, mask: Optional[Tensor]):
        """Yield ``(layer index, tokens after it, grid)``; the last one after the final norm.
        With ``window_size > 0`` the blocks not in ``global_attn_indexes`` attend within
        windows (:meth:`_windowed_block`)."""
        tokens, grid = self.embed(x, mask)
        shared_bias = self.rel_pos_bias(grid) if self.rel_pos_bias is not None else None
        windowed = self.window_size > 0
        window_bias = None
        if windowed and self.rel_pos_bias is not None:
            window_bias = self.rel_pos_bias((self.window_size, self.window_size))
        for i, block in enumerate(self.blocks):
            if windowed and i not in self.global_attn_indexes:
                tokens = self._windowed_block(block, tokens, grid, window_bias)
            else:
                tokens = block(tokens, grid, shared_bias)
            if i == self.num_layers - 1 and self.norm is not None:
                tokens = self.norm(tokens)
            yield i, tokens, grid

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tuple[Tensor, ...]:
        """``x: [B, C, H, W]``, ``mask: [B, H/P, W/P]`` bool -> one output per ``out_indices``."""
        outs = []
        for i, tokens, grid in self._layers(x, mask):
            if i in self.out_indices:
                outs.append(self._format_output(tokens, grid))
        return tuple(outs)

    def forward_features(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """Tokens ``[B, 1+N, D]`` after the last layer and the final norm (if any)."""
        for _, tokens, _ in self._layers(x, mask):
            pass
        return tokens

    # ------------------------------------------------------------------ optimisation helpers
    def no_weight_decay(self) -> Set[str]:
        """Names of the parameters, besides 1-D ones and biases, that get no weight decay
        (the rule is in ``beitlab/engine/optimizers/no_decay_constructor.py``):
        ``cls_token`` and ``pos_embed`` (official BEiT's ``no_weight_decay()``) and, a beitlab
        choice, ``mask_token`` and every relative position bias table (official BEiT
        pre-training decays those two)."""
        names = {n for n in ('cls_token', 'pos_embed', 'mask_token') if getattr(self, n) is not None}
        names.update(n for n, _ in self.named_parameters()
                     if n.endswith('relative_position_bias_table'))
        return names

    def get_layer_id(self, param_name: str, prefix: str = '') -> int:
        """Layer id for layer-wise learning-rate decay (BEiT Sec. 3.1, fine-tuning).

        Embeddings (``cls_token``, ``mask_token``, ``pos_embed``, ``patch_embed.*``)
        -> 0, ``blocks.i.*`` -> i + 1, anything else (the shared ``rel_pos_bias``,
        final norms, heads, names without ``prefix``) -> L + 1, as official BEiT's
        ``get_num_layer_for_vit``.
        """
        if not param_name.startswith(prefix):
            return self.num_layers + 1
        name = param_name[len(prefix):]
        if name in ('cls_token', 'mask_token', 'pos_embed') or \
                name.startswith('patch_embed.'):
            return 0
        if name.startswith('blocks.'):
            return int(name.split('.')[1]) + 1
        return self.num_layers + 1

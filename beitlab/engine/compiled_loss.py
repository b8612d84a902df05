"""BEiT's masked-image-modeling loss as one ``torch.compile`` call with static shapes.

:func:`masked_token_loss` is ``BEiT.loss`` after the tokenizer (BEiT Sec. 2.3, Eq. 1):
backbone, MIM head and cross-entropy on the masked patches, written for masks that hold
the same number K of masked patches in every image (``BlockwiseMaskGenerator(exact=True)``),
so that every tensor has a shape fixed by the config: ``[B, K]`` indices instead of the
boolean selections ``BEiT.loss`` makes (whose sizes are data-dependent and would split a
compiled graph). Its values equal ``BEiT.loss`` up to rounding (``tests/engine/test_fast_path.py``).

:class:`CompiledMIMLoss` replaces ``loss`` on one model instance (state-dict keys,
checkpoints and DDP wrapping are unchanged): the tokenizer runs under
``torch.inference_mode``, then backbone + head + loss run as ONE compiled function
(``fullgraph=True``: a graph break is a failure, not a silent split). When compiling fails
(no C++ compiler for inductor, an unsupported operation, a graph break) it logs one warning
naming the reason and trains eagerly from then on; a batch whose masks hold different
numbers of patches takes the eager loss (one warning the first time).
"""
import contextlib
import logging
from typing import Callable, Iterator, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from torch import Tensor, nn

from beitlab.utils.model_wrappers import unwrap_model

__all__ = ['masked_token_loss', 'compiled_loss_problem', 'compiler_problem', 'CompiledMIMLoss',
           'install_compiled_loss', 'uninstall_compiled_loss', 'suspend_compiled_loss']

_ATTR = '_beitlab_compiled_loss'


def masked_token_loss(backbone: nn.Module, head: nn.Module, img: Tensor, mask: Tensor,
                      index: Tensor, labels: Tensor,
                      shared_bias: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """Cross-entropy of the MIM head on K masked patches per image, static shapes only.

    The same computation as ``BEiT.loss`` after the tokenizer: the patches of ``mask`` are
    replaced by ``[MASK]``, the layers before the last run on every token, the last one
    (``BEiTBlock`` with ``query_index``) and the final norm on the masked patches only
    (keys and values from all tokens, as ``BEiTViT.forward_masked``), then the head.

    Args:
        backbone: ``BEiTViT`` without windowed attention, with its final norm.
        head: ``MIMHead`` (called as ``head(feats) -> logits``).
        img: ``[B, C, H, W]`` the ViT view.
        mask: ``[B, N]`` bool, True = masked, exactly K per row.
        index: ``[B, K]`` int64, the masked patch positions of each row in ascending
            (row-major) order.
        labels: ``[B, K]`` int64, the target token of each of those patches.
        shared_bias: ``backbone.rel_pos_bias(grid)`` ``[heads, 1+N, 1+N]`` when the backbone
            has a shared relative position bias (required then, ignored otherwise). Given
            as an input, the compiled graph reads it as one tensor; computed inside, inductor
            fuses the table lookup into every layer's softmax as an indexed load per element
            (slower).
    Returns:
        ``loss`` (mean cross-entropy over the B * K patches, fp32) and ``mlm_acc`` (top-1
        accuracy on them, no gradient), both scalars.
    """
    tokens, grid = backbone.embed(img, mask)
    bias = None
    if backbone.rel_pos_bias is not None:
        if shared_bias is None:
            raise ValueError('masked_token_loss: the backbone has a shared relative position '
                             'bias; pass shared_bias=backbone.rel_pos_bias(grid)')
        bias = shared_bias
    for block in backbone.blocks[:-1]:
        tokens = block(tokens, grid, bias)
    tokens = backbone.blocks[-1](tokens, grid, bias,
                                 query_index=index + backbone.num_extra_tokens)  # [B, K, D]
    logits = head(backbone.norm(tokens)).flatten(0, 1)                          # [B*K, V]
    labels = labels.flatten()
    loss = F.cross_entropy(logits.float(), labels)
    mlm_acc = (logits.detach().argmax(-1) == labels).float().mean()
    return loss, mlm_acc


def compiled_loss_problem(model: nn.Module) -> Optional[str]:
    """Why :class:`CompiledMIMLoss` cannot stand in for ``model.loss`` (None: it can).

    It covers ``BEiT`` itself (a subclass that overrides ``loss``, e.g. BEiT v2, keeps its
    own) with a ``BEiTViT`` backbone without windowed attention and a ``MIMHead``.
    """
    from beitlab.models.algorithms.beit import BEiT
    from beitlab.models.backbones.beit_vit import BEiTViT
    from beitlab.models.heads.mim_head import MIMHead
    name = type(model).__name__
    if not isinstance(model, BEiT) or type(model).loss is not BEiT.loss:
        return f'{name} is not BEiT (the compiled loss is the BEiT loss; {name} keeps its own)'
    backbone = model.backbone
    if not isinstance(backbone, BEiTViT) or getattr(backbone, 'window_size', 0) > 0 \
            or backbone.norm is None:
        return (f'{name}.backbone must be a BEiTViT with a final norm and without windowed '
                f'attention, got {type(backbone).__name__}')
    if not isinstance(model.head, MIMHead):
        return f'{name}.head must be a MIMHead, got {type(model.head).__name__}'
    return None


def compiler_problem(backend: str, device_type: str) -> Optional[str]:
    """Why ``torch.compile(backend=backend)`` cannot generate code on ``device_type`` here
    (None: nothing known against it). inductor compiles C++ for the CPU at run time."""
    if backend != 'inductor' or device_type != 'cpu':
        return None
    try:
        from torch._inductor import cpp_builder
        cpp_builder.get_cpp_compiler()
    except Exception as err:  # inductor's InvalidCxxCompiler, or an inductor without it
        return (f'no C++ compiler for inductor ({type(err).__name__}: '
                f'{str(err).strip().splitlines()[0] if str(err).strip() else err!r}); install '
                f'g++ (apt-get install g++) or set CXX')
    return None


def _warn(message: str) -> None:
    print_log(message, logger='current', level=logging.WARNING)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f'{type(err).__name__}: {text.splitlines()[0] if text else "(no message)"}'


class CompiledMIMLoss:
    """``BEiT.loss`` with backbone, head and cross-entropy in one compiled call.

    Installed as ``model.loss`` by :func:`install_compiled_loss`. Each call: the masks
    are stacked on the host and counted; when every image masks the same K patches the
    tokenizer runs under ``torch.inference_mode`` and :func:`masked_token_loss` runs
    compiled, otherwise (or after a compile failure) the model's own loss runs.

    Args:
        model: a ``BEiT`` (see :func:`compiled_loss_problem`).
        backend, mode, dynamic: passed to ``torch.compile`` (``backend='eager'`` only traces:
            for tests). ``dynamic=False`` specialises on the training shapes; another batch
            size (the last batch of an epoch) compiles once more.
        compile_fn: the compile call (default ``torch.compile``), replaceable for tests.
    """

    def __init__(self, model: nn.Module, backend: str = 'inductor', mode: Optional[str] = None,
                 dynamic: Optional[bool] = False,
                 compile_fn: Optional[Callable[..., Callable]] = None) -> None:
        problem = compiled_loss_problem(model)
        if problem is not None:
            raise ValueError(f'CompiledMIMLoss: {problem}')
        self.model = model
        self.eager_loss = model.loss
        self.backend = backend
        self.fallback_reason: Optional[str] = None
        self.compiled_calls = 0
        self.suspended = False
        self._warned_counts = False
        backbone, head = model.backbone, model.head

        def loss_fn(img: Tensor, mask: Tensor, index: Tensor, labels: Tensor,
                    shared_bias: Optional[Tensor]):
            return masked_token_loss(backbone, head, img, mask, index, labels, shared_bias)

        self.static_loss = loss_fn
        param = next(model.parameters(), None)
        device_type = param.device.type if param is not None else 'cpu'
        self.fallback_reason = compiler_problem(backend, device_type)
        self._compiled: Optional[Callable] = None
        if self.fallback_reason is None:
            kwargs = dict(backend=backend, fullgraph=True, dynamic=dynamic)
            if mode is not None:
                kwargs['mode'] = mode
            try:
                self._compiled = (compile_fn or torch.compile)(loss_fn, **kwargs)
            except Exception as err:
                self.fallback_reason = _first_line(err)
        if self.fallback_reason is not None:
            self._fall_back(self.fallback_reason)

    @property
    def active(self) -> bool:
        """Whether the compiled function is still in use (no compile failure so far)."""
        return self._compiled is not None

    def _fall_back(self, reason: str) -> None:
        self.fallback_reason = reason
        self._compiled = None
        _warn(f'fast path: torch.compile of the BEiT loss (backend={self.backend!r}) failed, '
              f'training runs eagerly: {reason}')

    def _run_compiled(self, *args: Optional[Tensor]) -> Optional[Tuple[Tensor, Tensor]]:
        """The compiled function's outputs, or None after falling back. The backward graph
        is lowered together with the forward one, so that its failure is caught here too."""
        from torch._functorch import config as functorch_config
        patch = functorch_config.patch(force_non_lazy_backward_lowering=True) \
            if hasattr(functorch_config, 'force_non_lazy_backward_lowering') else _null_context()
        try:
            with patch:
                out = self._compiled(*args)
        except Exception as err:  # dynamo / inductor / a failing compile_fn: eager from now on
            self._fall_back(_first_line(err))
            return None
        self.compiled_calls += 1
        return out

    def static_inputs(self, img_vit: Tensor, data_samples: Sequence
                      ) -> Optional[Tuple[Tensor, Tensor, Tuple[int, int]]]:
        """``mask [B, N]`` bool and ``index [B, K]`` int64 on ``img_vit``'s device plus the
        patch grid, or None when the images mask different numbers of patches."""
        masks = self.model.stack_masks(data_samples, torch.device('cpu'))  # [B, h, w]
        grid = tuple(masks.shape[-2:])
        mask = masks.flatten(1)
        counts = mask.sum(1)
        if bool((counts != counts[0]).any()):
            if not self._warned_counts:
                self._warned_counts = True
                _warn(f'fast path: the masks of a batch hold different numbers of patches '
                      f'({int(counts.min())}..{int(counts.max())}), so that batch takes the eager '
                      f'loss; BlockwiseMaskGenerator(exact=True) masks exactly '
                      f'num_masking_patches in every image')
            return None
        b, k = mask.shape[0], int(counts[0])
        index = mask.nonzero()[:, 1].view(b, k)  # row-major, ascending in each row
        device = img_vit.device
        return mask.to(device, non_blocking=True), index.to(device, non_blocking=True), grid

    def __call__(self, inputs: Sequence[Tensor], data_samples: Sequence) -> dict:
        """``dict(loss, mlm_acc)`` as ``BEiT.loss(inputs, data_samples)``."""
        if self._compiled is None or self.suspended:
            return self.eager_loss(inputs, data_samples)
        img_vit, img_tok = inputs
        static = self.static_inputs(img_vit, data_samples)
        if static is None:
            return self.eager_loss(inputs, data_samples)
        mask, index, grid = static
        with torch.inference_mode():
            target = self.model.target_generator(img_tok, patch_grid=grid)  # [B, N] int64
            labels = target.gather(1, index)
        labels = labels.clone()  # a normal tensor again (inference tensors stay out of autograd)
        rel_pos_bias = self.model.backbone.rel_pos_bias
        shared_bias = rel_pos_bias(grid) if rel_pos_bias is not None else None  # eager, tiny
        out = self._run_compiled(img_vit, mask, index, labels, shared_bias)
        if out is None:
            return self.eager_loss(inputs, data_samples)
        loss, mlm_acc = out
        return dict(loss=loss, mlm_acc=mlm_acc)


class _null_context:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc) -> None:
        return None


def install_compiled_loss(model: nn.Module, **kwargs) -> Optional[CompiledMIMLoss]:
    """Make ``model.loss`` (model wrappers such as DDP and ``torch.compile`` are
    unwrapped) a :class:`CompiledMIMLoss`; ``kwargs`` go to it. A model it does not cover keeps its
    loss (one info line says why) and None is returned; a second call returns the
    installed one."""
    model = unwrap_model(model)
    installed = getattr(model, _ATTR, None)
    if installed is not None:
        return installed
    problem = compiled_loss_problem(model)
    if problem is not None:
        print_log(f'fast path: no compiled loss: {problem}', logger='current', level=logging.INFO)
        return None
    compiled = CompiledMIMLoss(model, **kwargs)
    model.loss = compiled
    setattr(model, _ATTR, compiled)
    return compiled


def uninstall_compiled_loss(model: nn.Module) -> bool:
    """Give ``model`` its own ``loss`` back; False when none was installed."""
    model = unwrap_model(model)
    if getattr(model, _ATTR, None) is None:
        return False
    del model.loss
    delattr(model, _ATTR)
    return True


@contextlib.contextmanager
def suspend_compiled_loss(model: nn.Module) -> Iterator[None]:
    """Inside the block ``model`` computes its loss eagerly (the same arithmetic), e.g. for
    ``FlopCounterMode``, which does not see inside a compiled graph; a model without a
    compiled loss is unaffected."""
    compiled = getattr(unwrap_model(model), _ATTR, None)
    if compiled is None:
        yield
        return
    before = compiled.suspended
    compiled.suspended = True
    try:
        yield
    finally:
        compiled.suspended = before

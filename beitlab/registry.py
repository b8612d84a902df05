"""Every beitlab registry, each a child of the matching mmengine root registry.

Configs built by the mmengine ``Runner`` with ``default_scope = 'beitlab'`` find
beitlab's parts here. Registries are filled only by
:func:`beitlab.utils.register_all_modules`; importing this file registers nothing.

Each docstring below is the contract a registered object must honour: the registry
contract test (``tests/test_registry_contracts.py``) builds every entry of every registry in
:data:`ALL_REGISTRIES` with tiny arguments and runs it against its registry's contract, and
``tests/test_registry.py`` checks that every entry is documented.
"""
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import Registry

__all__ = [
    'MODELS', 'TOKENIZERS', 'TARGET_GENERATORS', 'MASK_GENERATORS', 'DATASETS',
    'TRANSFORMS', 'FUNCTIONS', 'METRICS', 'HOOKS', 'LOOPS', 'OPTIMIZERS', 'OPTIM_WRAPPERS',
    'OPTIM_WRAPPER_CONSTRUCTORS', 'PARAM_SCHEDULERS', 'MODEL_WRAPPERS', 'VISUALIZERS', 'VISBACKENDS',
    'ALL_REGISTRIES'
]

MODELS = Registry('model', parent=MMENGINE_MODELS, scope='beitlab')
MODELS.__doc__ = """Backbones, necks, heads, losses, data preprocessors and algorithms (``nn.Module``).

- backbone: ``forward(x: [B, C, H, W] float, mask: [B, H/P, W/P] bool | None)`` returns
  a tuple with one entry per ``out_indices``.
- neck: ``forward(tuple of [B, C_i, H_i, W_i])`` returns a tuple of feature maps; BEiT
  v2's ``PatchAggregationNeck`` works on tokens instead:
  ``forward(early [B, 1+N, D], final [B, 1+N, D], grid, rel_pos_bias) -> [B, 1+N, D]``.
- head: ``forward(feats, ...)`` returns the prediction and ``loss(feats, ...)`` a
  ``dict[str, Tensor]`` with ``'loss'``; the arguments after ``feats`` are the head's own
  (``target, mask`` for the MIM heads, ``ids_restore`` after them for ``MAEDecoder``,
  ``data_samples`` for ``ClsHead``); predicting heads also have ``predict(...)``.
- loss: ``forward(pred, target, ...) -> Tensor`` (a scalar unless ``reduction='none'``).
- data preprocessor: an mmengine ``BaseDataPreprocessor``;
  ``forward(data: dict, training: bool) -> dict(inputs=..., data_samples=...)`` with the
  uint8 views turned into normalised float batches.
- algorithm: an mmengine ``BaseModel`` on ``beitlab/models/algorithms/base.py``;
  ``forward(inputs, data_samples, mode)`` with mode in its ``modes`` ('loss', 'predict',
  'tensor'; the regressions MAE, SimMIM and MaskFeat have no 'predict'), any other mode a
  ``ValueError`` naming them; 'loss' returns ``dict[str, Tensor]``.
"""

TOKENIZERS = Registry('tokenizer', scope='beitlab')
TOKENIZERS.__doc__ = """Visual tokenizers (``nn.Module``): map an image view to a grid of token ids.

A registered tokenizer exposes ``vocab_size: int`` and ``downsample: int`` and
implements ``get_tokens(img: [B, 3, h, w] float RGB in [0, 1]) -> [B, h/downsample, w/downsample]
int64``; any further input scaling (e.g. DALL-E's ``map_pixels``) happens inside the tokenizer.
Trainable ones (dVAE, VQ-KD) also implement ``loss(img) -> dict[str, Tensor]``.
"""

TARGET_GENERATORS = Registry('target generator', scope='beitlab')
TARGET_GENERATORS.__doc__ = """Masked-image-modeling targets (``nn.Module``, frozen, no gradients).

``forward(img: [B, 3, h, w] float) -> target`` where target is either token ids
``[B, N] int64`` or per-patch features ``[B, N, C] float``; N = number of ViT patches,
in row-major patch order.
"""

MASK_GENERATORS = Registry('mask generator', scope='beitlab')
MASK_GENERATORS.__doc__ = """Mask generators (plain callables, run in data-loader workers).

``__call__() -> np.ndarray [H/P, W/P] bool`` (True = masked), row-major like the
patches and the visual tokens; ``num_patches`` and ``input_size`` are attributes.
"""

DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, scope='beitlab')
DATASETS.__doc__ = """Datasets: mmengine ``BaseDataset`` subclasses whose ``load_data_list()``
returns dicts with at least ``img_path`` (and ``gt_label: int`` when labelled); a dataset that
holds its images in memory gives ``img`` ([H, W, 3] uint8, BGR as decoded) from
``get_data_info(i)`` instead, and its pipeline starts after the loading step."""

TRANSFORMS = Registry('transform', parent=MMENGINE_TRANSFORMS, scope='beitlab')
TRANSFORMS.__doc__ = """Data transforms: ``transform(results: dict) -> dict | None``
(mmcv ``BaseTransform``)."""

FUNCTIONS = Registry('function', parent=MMENGINE_FUNCTIONS, scope='beitlab')
FUNCTIONS.__doc__ = """Functions a config names by ``type`` without building an object: the
dataloader's ``collate_fn`` (``fn(data_batch: list of samples) -> batch``, as mmengine's
``default_collate``; mmengine's own are found through the parent)."""

METRICS = Registry('metric', parent=MMENGINE_METRICS, scope='beitlab')
METRICS.__doc__ = """Metrics: mmengine ``BaseMetric``; ``process(data_batch, data_samples)`` then
``compute_metrics(results) -> dict[str, float]``."""

HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope='beitlab')
HOOKS.__doc__ = """Runner hooks: mmengine ``Hook`` subclasses."""

LOOPS = Registry('loop', parent=MMENGINE_LOOPS, scope='beitlab')
LOOPS.__doc__ = """Training loops (mmengine ``BaseLoop`` subclasses; mmengine's own loops are found
through the parent), built by the ``Runner`` with ``runner`` and ``dataloader`` and named by
``train_cfg``; ``run()`` trains and returns the model. An iteration-based loop draws its
batches from ``dataloader_iterator`` endlessly, in mmengine's ``IterBasedTrainLoop`` order
(the sampler's ``set_epoch`` at every pass over the data)."""

OPTIMIZERS = Registry('optimizer', parent=MMENGINE_OPTIMIZERS, scope='beitlab')
OPTIMIZERS.__doc__ = """Optimizers: ``torch.optim.Optimizer`` subclasses
(torch's are found through the parent)."""

OPTIM_WRAPPERS = Registry('optim_wrapper', parent=MMENGINE_OPTIM_WRAPPERS, scope='beitlab')
OPTIM_WRAPPERS.__doc__ = """Optimizer wrappers: mmengine ``OptimWrapper`` subclasses;
``optim_context(model)`` wraps the forward and ``update_params(loss)`` steps
(mmengine's own are found through the parent)."""

OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor', parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS, scope='beitlab')
OPTIM_WRAPPER_CONSTRUCTORS.__doc__ = """Optimizer wrapper constructors:
``__init__(optim_wrapper_cfg: dict, paramwise_cfg: dict | None)`` and
``__call__(model: nn.Module) -> OptimWrapper`` with one parameter group per rule."""

PARAM_SCHEDULERS = Registry('parameter scheduler', parent=MMENGINE_PARAM_SCHEDULERS, scope='beitlab')
PARAM_SCHEDULERS.__doc__ = """Parameter schedulers (mmengine's are found through the parent)."""

MODEL_WRAPPERS = Registry('model_wrapper', parent=MMENGINE_MODEL_WRAPPERS, scope='beitlab')
MODEL_WRAPPERS.__doc__ = """Model wrappers for distributed training: ``__init__(module, **kwargs)``;
``train_step``/``val_step``/``test_step`` as mmengine's ``MMDistributedDataParallel``."""

VISUALIZERS = Registry('visualizer', parent=MMENGINE_VISUALIZERS, scope='beitlab')
VISUALIZERS.__doc__ = """Visualizers: mmengine ``Visualizer`` subclasses."""

VISBACKENDS = Registry('vis_backend', parent=MMENGINE_VISBACKENDS, scope='beitlab')
VISBACKENDS.__doc__ = """Visualization backends (mmengine's are found through the parent)."""

# Every registry above (tests/test_registry.py checks that none is left out). OPTIMIZERS,
# PARAM_SCHEDULERS and VISBACKENDS hold no beitlab entry yet: they give the beitlab scope
# mmengine's (and torch's) entries through their parents.
ALL_REGISTRIES = {
    'models': MODELS,
    'tokenizers': TOKENIZERS,
    'target_generators': TARGET_GENERATORS,
    'mask_generators': MASK_GENERATORS,
    'datasets': DATASETS,
    'transforms': TRANSFORMS,
    'functions': FUNCTIONS,
    'metrics': METRICS,
    'hooks': HOOKS,
    'loops': LOOPS,
    'optimizers': OPTIMIZERS,
    'optim_wrappers': OPTIM_WRAPPERS,
    'optim_wrapper_constructors': OPTIM_WRAPPER_CONSTRUCTORS,
    'param_schedulers': PARAM_SCHEDULERS,
    'model_wrappers': MODEL_WRAPPERS,
    'visualizers': VISUALIZERS,
    'vis_backends': VISBACKENDS,
}

"""Send the masked-image-modeling picture of ``vis_mim.py`` to the visualiser while training."""
import copy
import random
from typing import Optional

import numpy as np
from mmengine.dataset import pseudo_collate
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import DefaultScope

from beitlab.registry import DATASETS, HOOKS
from beitlab.visualization.mim_figure import draw_mim_figure, draw_pixel_figure, eval_pipeline

from .knn_monitor_hook import preserved_training_state

__all__ = ['MIMVisualizationHook']


@HOOKS.register_module()
class MIMVisualizationHook(Hook):
    """Every ``interval`` iterations (and after the last), draw the figure of
    ``tools/visualization/vis_mim.py`` -- view, masked input, masked tokens right (green) /
    wrong (red), decoded tokens when the tokenizer decodes -- for a fixed set of images and
    send it to every visualiser backend with ``runner.visualizer.add_image(name, img, step)``
    (``LocalVisBackend``: ``vis_data/vis_image/<name>_<step>.png``; TensorBoard: the images
    tab).

    The figure follows the model: one with a ``reconstruct`` method (MAE, SimMIM: pixel
    targets) gets :func:`~beitlab.visualization.mim_figure.draw_pixel_figure` -- view, masked
    input, reconstruction (predicted pixels in the masked patches, visible ones kept) -- and
    a BEiT-style model (token targets) the token figure above.

    The images are the first ``num_images`` of the training dataset through the deterministic
    part of its pipeline (:func:`~beitlab.visualization.mim_figure.eval_pipeline`), with masks
    drawn once from ``seed``, so that successive pictures differ only by the model. Drawing
    runs in eval mode under ``no_grad`` and restores the training flags and random states.

    Args:
        interval: draw every this many iterations, and after the last one.
        num_images: rows of the figure.
        scale: upscaling of each panel.
        seed: seed of the masks.
        name: image name in the backends.
        dataset: a dataset config to draw from instead of ``train_dataloader.dataset`` (its
            pipeline is made deterministic the same way).

    After each picture ``last_accuracy`` (token figure) or ``last_mse`` (pixel figure) holds
    its number.
    """

    priority = 'LOW'

    def __init__(self, interval: int = 100, num_images: int = 8, scale: int = 4, seed: int = 0,
                 name: str = 'mim', dataset: Optional[dict] = None) -> None:
        if interval < 1 or num_images < 1 or scale < 1:
            raise ValueError(f'MIMVisualizationHook: interval={interval}, num_images={num_images} '
                             f'and scale={scale} must be >= 1')
        self.interval = int(interval)
        self.num_images = int(num_images)
        self.scale = int(scale)
        self.seed = int(seed)
        self.name = name
        self.dataset_cfg = dataset
        self.last_accuracy: Optional[float] = None
        self.last_mse: Optional[float] = None
        self._pixels = False
        self._batch: Optional[dict] = None

    @staticmethod
    def _model(runner):
        return runner.model.module if is_model_wrapper(runner.model) else runner.model

    def before_train(self, runner) -> None:
        from beitlab.models.algorithms.beit import BEiT
        from beitlab.models.targets.pixels import PixelTarget

        model = self._model(runner)
        if callable(getattr(model, 'reconstruct', None)):
            target = getattr(model, 'target_generator', None)
            if not isinstance(target, PixelTarget):
                raise TypeError(f'MIMVisualizationHook: {type(model).__name__} reconstructs '
                                f'only a PixelTarget, its target is {type(target).__name__}')
            self._pixels = True
        elif isinstance(model, BEiT):
            self._pixels = False
        else:
            raise TypeError(f'MIMVisualizationHook draws predicted visual tokens (BEiT, BEiTv2) '
                            f'or pixel reconstructions (a model with a reconstruct method: MAE, '
                            f'SimMIM); {type(model).__name__} offers neither')
        ds_cfg = copy.deepcopy(self.dataset_cfg or runner.cfg.train_dataloader.dataset)
        ds_cfg['pipeline'] = eval_pipeline(ds_cfg['pipeline'])
        with DefaultScope.overwrite_default_scope(runner.cfg.get('default_scope', 'beitlab')), \
                preserved_training_state(model):
            dataset = DATASETS.build(ds_cfg)
            random.seed(self.seed)
            np.random.seed(self.seed)
            self._batch = pseudo_collate([dataset[i]
                                          for i in range(min(self.num_images, len(dataset)))])

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.every_n_train_iters(runner, self.interval) or self.is_last_train_iter(runner):
            self.draw(runner, step=runner.iter + 1)

    def draw(self, runner, step: int) -> np.ndarray:
        """Draw the figure, send it to the backends and return it (``[H, W, 3]`` uint8 RGB)."""
        model = self._model(runner)
        batch = copy.deepcopy(self._batch)
        with preserved_training_state(model):
            if self._pixels:
                figure = draw_pixel_figure(model, batch, scale=self.scale, seed=self.seed)
            else:
                figure = draw_mim_figure(model, batch, scale=self.scale)
        if self._pixels:
            self.last_mse = figure.mse
            summary = f'reconstruction MSE {figure.mse:.4f} on {figure.masked} masked patches'
        else:
            self.last_accuracy = figure.accuracy
            summary = (f'masked-token accuracy {figure.hits}/{figure.masked} = '
                       f'{figure.accuracy:.4f}')
        runner.visualizer.add_image(self.name, figure.image, step=step)
        runner.logger.info(f'MIM picture {self.name!r} at iteration {step}: {summary}, '
                           f'{figure.num_images} images')
        return figure.image

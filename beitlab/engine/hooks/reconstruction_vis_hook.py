"""Save original-vs-reconstruction grids of a tokenizer while it trains."""
import os
import os.path as osp
from typing import Optional

import mmcv
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from beitlab.registry import HOOKS
from beitlab.visualization.reconstruction_grid import reconstruction_grid

__all__ = ['ReconstructionVisHook']


@HOOKS.register_module()
class ReconstructionVisHook(Hook):
    """After every ``interval``-th validation, reconstruct the first ``num_images`` images of
    the val set and write ``<work_dir>/vis_reconstruction/recon_<step>.png``
    (pairs: original left, reconstruction right).

    Args:
        num_images: images in the grid.
        interval: save after every ``interval``-th validation run.
        out_dir: folder under the work dir.
    """

    priority = 'LOW'

    def __init__(self, num_images: int = 32, interval: int = 1,
                 out_dir: str = 'vis_reconstruction') -> None:
        self.num_images = num_images
        self.interval = interval
        self.out_dir = out_dir
        self._num_val = 0
        self.last_file: Optional[str] = None

    @torch.no_grad()
    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        self._num_val += 1
        if self._num_val % self.interval:
            return
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        originals, recons = [], []
        for data_batch in runner.val_dataloader:
            data = model.data_preprocessor(data_batch, False)
            for sample in model(data['inputs'], data.get('data_samples'), mode='predict'):
                originals.append(sample.gt_img)
                recons.append(sample.pred_img)
            if len(originals) >= self.num_images:
                break
        grid = reconstruction_grid(torch.stack(originals[:self.num_images]),
                                   torch.stack(recons[:self.num_images]))
        step = f'iter_{runner.iter}' if runner.iter else f'epoch_{runner.epoch}'
        folder = osp.join(runner.work_dir, self.out_dir)
        os.makedirs(folder, exist_ok=True)
        self.last_file = osp.join(folder, f'recon_{step}.png')
        mmcv.imwrite(grid[..., ::-1], self.last_file)  # mmcv writes BGR
        runner.logger.info(f'reconstruction grid saved to {self.last_file}')

"""MIMVisualizationHook: vis_mim's figure goes to the visualiser every N iterations."""
import copy
import glob

import cv2
import numpy as np
from mmengine.config import Config

from beitlab.engine.hooks.mim_visualization_hook import MIMVisualizationHook
from beitlab.utils import register_all_modules
from beitlab.visualization.mim_figure import draw_mim_figure
from tests.tools_helpers import REPO_ROOT

CONFIG = str(REPO_ROOT / 'configs' / 'beit' / 'mim_vit-tiny_1xb8-2it_tiny.py')


def test_pictures_reach_the_backends(tmp_path) -> None:
    from beitlab.engine.runner import BeitlabRunner
    register_all_modules()
    cfg = Config.fromfile(CONFIG)
    cfg.work_dir = str(tmp_path)
    cfg.visualizer.name = f'visualizer-{tmp_path}'
    cfg.custom_hooks = [dict(type='MIMVisualizationHook', interval=1, num_images=3, scale=2)]
    runner = BeitlabRunner.from_cfg(cfg)
    runner.train()
    files = sorted(glob.glob(str(tmp_path / '*' / 'vis_data' / 'vis_image' / 'mim_*.png')))
    assert [f.rsplit('_', 1)[-1] for f in files] == ['1.png', '2.png']
    (hook, ) = [h for h in runner.hooks if isinstance(h, MIMVisualizationHook)]
    saved = cv2.imread(files[-1])[..., ::-1]
    runner.model.eval()
    figure = draw_mim_figure(runner.model, copy.deepcopy(hook._batch), scale=2)
    assert figure.num_images == 3 and figure.labels[:3] == ('image', 'masked\ninput',
                                                            'masked tokens\nright / wrong')
    assert np.array_equal(saved, figure.image)               # the final model's picture
    assert hook.last_accuracy == figure.accuracy

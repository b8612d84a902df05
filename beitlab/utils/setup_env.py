"""Explicit registration of every beitlab component."""
import importlib
import pkgutil

# Packages whose modules register components into ``beitlab.registry``. The
# downstream adapters (``beitlab.downstream``) register into mmseg's and mmdet's
# registries instead and are loaded by those configs through ``custom_imports``.
COMPONENT_PACKAGES = (
    'beitlab.models',
    'beitlab.masking',
    'beitlab.datasets',
    'beitlab.evaluation',
    'beitlab.engine',
    'beitlab.visualization',
)

# Modules inside those packages that build on an optional downstream library (mmseg, mmdet)
# and register into its registries: the adapter that needs one imports it, the walk does not.
ADAPTER_ONLY_MODULES = frozenset({
    'beitlab.datasets.fashion_mnist_scenes_seg',  # mmseg BaseSegDataset; mmseg_adapter.py
})


def _import_tree(package_name: str) -> None:
    package = importlib.import_module(package_name)
    for info in pkgutil.walk_packages(package.__path__, prefix=package_name + '.'):
        if info.name not in ADAPTER_ONLY_MODULES:
            importlib.import_module(info.name)


def register_all_modules(init_default_scope: bool = False) -> None:
    """Import every component module so that its decorator fills its registry,
    make checkpoint loading safe (see :mod:`beitlab.checkpoint.io`) and make
    ``init_cfg=dict(type='Pretrained')`` strict: mmengine's ``'Pretrained'`` weight
    initializer is rebound (``force=True``) to
    :class:`~beitlab.checkpoint.pretrained_init.StrictPretrainedInit`, because mmengine's loads with
    ``strict=False`` and offers no option to change that (the reasons for overriding the
    name rather than adding one are in
    :func:`~beitlab.checkpoint.pretrained_init.install_strict_pretrained_init`).

    Args:
        init_default_scope: also make ``beitlab`` the current mmengine default
            scope (configs normally set ``default_scope = 'beitlab'`` themselves).
    """
    from beitlab.checkpoint.io import install_safe_checkpoint_loading
    from beitlab.checkpoint.pretrained_init import install_strict_pretrained_init
    install_safe_checkpoint_loading()
    install_strict_pretrained_init()
    for name in COMPONENT_PACKAGES:
        _import_tree(name)
    if init_default_scope:
        from mmengine.registry import DefaultScope
        if DefaultScope.get_current_instance() is None or \
                DefaultScope.get_current_instance().scope_name != 'beitlab':
            DefaultScope.get_instance(f'beitlab-{id(register_all_modules)}', scope_name='beitlab')

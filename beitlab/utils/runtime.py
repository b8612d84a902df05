"""Command-line and config preparation shared by tools/train.py and tools/test.py."""
import argparse
import ast
import contextlib
import datetime
import math
import os
import os.path as osp
import re
import socket
import tempfile
from typing import Any, Iterator, Optional

import torch
import torch.distributed as torch_dist
from mmengine.config import Config, DictAction

from .config_check import check_config_types
from .denormals import add_flush_denormal_arg

__all__ = ['add_runner_args', 'check_config_file', 'load_config', 'prepare_config',
           'shutdown_distributed', 'find_free_port', 'ConfigOptionsAction', 'dist_timeout',
           'check_writable_dir', 'DirectoryNotWritableError', 'DistributedTimeoutError',
           'describe_distributed_error', 'named_distributed_errors']

NESTED_OPTION_HINT = ('write nested options one key at a time, e.g. '
                      '`--cfg-options model.backbone.drop_path_rate=0.1 '
                      'optim_wrapper.optimizer.lr=1e-4`')


class ConfigOptionsAction(DictAction):
    """mmengine's ``DictAction`` (``KEY=VALUE``, lists as ``a,b`` or ``[a,b]``) that also
    reads ``dict(...)`` values and refuses what it cannot read with one sentence.

    ``KEY=dict(a=1, b=[2, 3])`` (also inside lists: ``KEY=[dict(type=A)]``) is read as a
    Python literal in which bare names are strings, as mmengine reads ``KEY=SGD``; like any
    dict given to ``Config.merge_from_dict`` it is merged into the dict at ``KEY``, exactly as
    ``KEY.a=1 KEY.b=[2,3]`` would be (``dict(_delete_=True, ...)`` replaces it). mmengine's
    own parser recurses forever on ``dict(a=1,b=2)`` (``RecursionError``) and keeps
    ``dict(a=1)`` as the string ``'dict(a=1)'``.
    """

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: Optional[str] = None) -> None:
        options = dict(getattr(namespace, self.dest, None) or {})
        for item in values or ():
            key, sep, val = item.partition('=')
            if not sep or not key:
                raise ValueError(f'--cfg-options {item!r}: expected KEY=VALUE, e.g. '
                                 'train_dataloader.batch_size=8')
            options[key] = self.parse_value(key, val)
        setattr(namespace, self.dest, options)

    @classmethod
    def parse_value(cls, key: str, val: str) -> Any:
        """The value of ``KEY=val`` (see the class docstring)."""
        if re.search(r'\bdict\s*\(', val):
            return _literal_with_dicts(key, val.strip().strip('\'"'))
        try:
            return cls._parse_iterable(val)
        except RecursionError:
            raise ValueError(f'--cfg-options {key}={val}: cannot read {val!r} (brackets '
                             f'mmengine does not split); {NESTED_OPTION_HINT}') from None
        except AssertionError as err:  # mmengine's "Imbalanced brackets exist in ..."
            raise ValueError(f'--cfg-options {key}={val}: {err}') from None


def _literal_with_dicts(key: str, text: str) -> Any:
    """``text`` as a Python literal where ``dict(k=v, ...)`` is a dict and a bare name a
    string; anything else (calls, attributes, operators) is a ``ValueError``."""
    def bad(what: str) -> ValueError:
        return ValueError(f'--cfg-options {key}={text}: {what} is not a literal value '
                          f'(numbers, quoted or bare strings, True/False/None, [..], (..) and '
                          f'dict(k=v, ...) are); {NESTED_OPTION_HINT}')

    def convert(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return node.id
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)) \
                and isinstance(node.operand, ast.Constant) \
                and isinstance(node.operand.value, (int, float)):
            return -node.operand.value if isinstance(node.op, ast.USub) else node.operand.value
        if isinstance(node, ast.List):
            return [convert(e) for e in node.elts]
        if isinstance(node, ast.Tuple):
            return tuple(convert(e) for e in node.elts)
        if isinstance(node, ast.Dict) and None not in node.keys:
            return {convert(k): convert(v) for k, v in zip(node.keys, node.values)}
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id == 'dict' and not node.args \
                and all(kw.arg is not None for kw in node.keywords):
            return {kw.arg: convert(kw.value) for kw in node.keywords}
        raise bad(repr(ast.unparse(node)))

    try:
        tree = ast.parse(text, mode='eval')
    except SyntaxError as err:
        raise ValueError(f'--cfg-options {key}={text}: not valid Python syntax ({err.msg}); '
                         f'{NESTED_OPTION_HINT}') from None
    return convert(tree.body)


def add_runner_args(parser: argparse.ArgumentParser, work_dir_help: str) -> None:
    """``--work-dir``, ``--cfg-options``, ``--launcher``, ``--local-rank`` and
    ``--no-flush-denormal`` (:func:`~beitlab.utils.denormals.add_flush_denormal_arg`)."""
    parser.add_argument('--work-dir', help=work_dir_help)
    parser.add_argument('--cfg-options', nargs='+', action=ConfigOptionsAction,
                        help='override config keys, e.g. train_dataloader.batch_size=8; nested '
                        'keys with dots (model.backbone.drop_path_rate=0.1) or as dict(...)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    add_flush_denormal_arg(parser)


def check_config_file(path: str) -> None:
    """Raise ``FileNotFoundError`` naming ``path`` when the config file does not exist."""
    if not osp.isfile(path):
        where = '' if osp.isabs(path) else f' (relative to the current directory {os.getcwd()})'
        raise FileNotFoundError(f'config file {path!r} does not exist{where}; the configs are '
                                'under configs/ of the repository, e.g. configs/beit/mim_vit-b.py')


def load_config(args: argparse.Namespace) -> Config:
    """The config of ``args.config`` with the arguments of :func:`add_runner_args` applied;
    the work dir defaults to ``./work_dirs/<config name>``."""
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    check_config_file(args.config)
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        './work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg


def dist_timeout(dist_cfg: dict) -> Optional[datetime.timedelta]:
    """``dist_cfg['timeout']`` (seconds, mmengine's convention) as a ``timedelta``;
    ``None`` when unset. Raises ``ValueError`` naming the key for anything but a positive
    number of seconds."""
    timeout = dist_cfg.get('timeout')
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
            or not math.isfinite(timeout) or timeout <= 0:
        raise ValueError(f'env_cfg.dist_cfg.timeout={timeout!r}: expected a positive number of '
                         'seconds, e.g. `--cfg-options env_cfg.dist_cfg.timeout=600` (a '
                         'collective that waits longer than this fails instead of hanging)')
    return datetime.timedelta(seconds=timeout)


def _init_cpu_process_group(backend: str, timeout: Optional[datetime.timedelta] = None) -> None:
    """mmengine's ``init_dist`` calls ``torch.cuda.set_device`` unconditionally;
    on a CPU-only machine the process group is created here instead (env://).

    ``timeout`` bounds the rendezvous and every collective (gloo raises on a peer that
    does not answer in time); ``None`` keeps torch's default.
    """
    if torch_dist.is_initialized():
        return
    kwargs = {} if timeout is None else dict(timeout=timeout)
    torch_dist.init_process_group(backend=backend, rank=int(os.environ['RANK']),
                                  world_size=int(os.environ['WORLD_SIZE']), **kwargs)


class DirectoryNotWritableError(OSError):
    """A folder the run must write into (work dir, checkpoint folder) cannot be written."""


def check_writable_dir(path: str, what: str, fix: str) -> None:
    """Create ``path`` if needed and write (then delete) a small file in it.

    ``os.access`` alone is not enough: it answers True to root for a read-only folder.
    Raises :class:`DirectoryNotWritableError` naming ``what`` (the config key), ``path``
    and the reason, with ``fix`` saying how to choose another folder.
    """
    path = osp.expanduser(str(path))
    where = '' if osp.isabs(path) else f' (relative to {os.getcwd()})'

    def fail(reason: str) -> None:
        raise DirectoryNotWritableError(f'{what} {path!r}{where} is not writable: {reason}; '
                                        f'{fix}')

    existing = path
    while existing and not osp.exists(existing):
        parent = osp.dirname(existing.rstrip(os.sep))
        if parent == existing:
            break
        existing = parent
    if existing and osp.exists(existing) and not osp.isdir(existing):
        fail(f'{existing!r} is a file, not a folder')
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as err:
        fail(f'cannot create it ({err.strerror or err})')
    if not os.access(path, os.W_OK | os.X_OK):
        fail('no write permission')
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix='.write_check_'):
            pass
    except OSError as err:
        fail(f'writing a file there failed ({err.strerror or err})')


def _check_output_dirs(cfg: Config) -> None:
    """The work dir and the checkpoint folder can be written (checked before anything is
    built, so that a read-only folder does not surface at the first checkpoint)."""
    work_dir = cfg.get('work_dir')
    if work_dir:
        check_writable_dir(work_dir, 'work_dir', 'choose another with --work-dir DIR')
    hooks = cfg.get('default_hooks') or {}
    ckpt = hooks.get('checkpoint') if isinstance(hooks, dict) else None
    out_dir = ckpt.get('out_dir') if isinstance(ckpt, dict) else None
    if out_dir and '://' not in str(out_dir) and work_dir:
        # mmengine's CheckpointHook writes to <out_dir>/<name of the work dir>
        folder = osp.join(str(out_dir), osp.basename(osp.normpath(str(work_dir))))
        check_writable_dir(folder, 'checkpoint folder (default_hooks.checkpoint.out_dir)',
                           'choose another with --cfg-options default_hooks.checkpoint.out_dir=DIR')


def _use_checked_downstream_types(cfg: Config) -> None:
    """mmdet configs: mmdet's ``CocoDataset`` / ``CocoMetric`` become beitlab's checked
    subclasses (same arguments and results; an annotation file without annotations is an
    error for training and validation, a warning without metrics for testing)."""
    if cfg.get('default_scope') != 'mmdet':
        return
    from beitlab.downstream.coco_checks import use_checked_coco_types
    use_checked_coco_types(cfg)


def prepare_config(cfg: Config) -> Config:
    """Validate every ``type`` (fails before anything is built), check that the output
    folders can be written, and set up distributed training: nccl on CUDA machines, gloo
    and CPU DDP otherwise, with ``env_cfg.dist_cfg.timeout`` (seconds) on both."""
    check_config_types(cfg)
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    timeout = dist_timeout(dist_cfg)
    _check_output_dirs(cfg)
    _use_checked_downstream_types(cfg)
    launcher = cfg.get('launcher', 'none')
    if torch.cuda.is_available():
        # mmengine's init_dist reads dist_cfg (timeout in seconds included) on CUDA
        if dist_cfg.get('backend', 'gloo') == 'gloo':
            dist_cfg['backend'] = 'nccl'
    elif launcher != 'none':
        if launcher != 'pytorch':
            raise RuntimeError(f'launcher {launcher!r} needs CUDA on this stack; on a CPU-only '
                               f'machine use tools/dist_train.sh (launcher pytorch, gloo)')
        _init_cpu_process_group(dist_cfg.get('backend', 'gloo'), timeout)
        cfg.setdefault('model_wrapper_cfg', dict(type='beitlab.CPUDistributedDataParallel'))
    return cfg


class DistributedTimeoutError(RuntimeError):
    """A collective operation failed because another rank did not answer in time."""


# gloo: "Timed out waiting 10000ms for recv operation to complete"; a later call on the
# same pair: "Application timeout caused pair closure"; nccl's watchdog: "Watchdog caught
# collective operation timeout: WorkNCCL(SeqNum=5, OpType=ALLREDUCE, ..., Timeout(ms)=600000)".
_TIMEOUT_PATTERNS = (
    re.compile(r'Timed out waiting (?P<ms>\d+)ms for (?P<op>\w+) operation'),
    re.compile(r'OpType=(?P<op>\w+).*?Timeout\(ms\)=(?P<ms>\d+)'),
    re.compile(r'(?P<op>)Application timeout caused pair closure(?P<ms>)'),
)
_C10D_WRAPPERS = {'wrapper', '_exception_logger', '_time_logger', 'inner'}


def _collective_name(err: BaseException) -> str:
    """What was running when ``err`` was raised: the outermost ``torch.distributed`` call
    of its traceback, or DDP's gradient all-reduce when it came out of a backward pass."""
    frames = []
    tb = err.__traceback__
    while tb is not None:
        frames.append((tb.tb_frame.f_code.co_filename, tb.tb_frame.f_code.co_name))
        tb = tb.tb_next
    for filename, name in frames:
        if filename.endswith('distributed_c10d.py') and name not in _C10D_WRAPPERS:
            return f'torch.distributed.{name}'
    if any(name == 'backward' for _, name in frames):
        return "the gradient all-reduce of DDP's backward pass"
    return 'a collective operation'


def describe_distributed_error(err: BaseException) -> Optional[str]:
    """One sentence for a collective that timed out (naming this rank, the operation and
    the timeout), or ``None`` when ``err`` is not such an error."""
    text = ' '.join(str(err).split())
    match = next((m for m in (p.search(text) for p in _TIMEOUT_PATTERNS) if m), None)
    if match is None:
        return None
    if torch_dist.is_available() and torch_dist.is_initialized():
        rank, world = torch_dist.get_rank(), torch_dist.get_world_size()
    else:
        rank, world = os.environ.get('RANK', '?'), os.environ.get('WORLD_SIZE', '?')
    waited = f' after {int(match["ms"]) / 1000:g} s' if match['ms'] else ''
    low_level = f' ({match["op"]})' if match['op'] else ''
    return (f'rank {rank} of {world}: {_collective_name(err)}{low_level} timed out{waited} '
            f'(env_cfg.dist_cfg.timeout): another rank stopped, died or is still busy; its own '
            f'output says which and why, or raise the timeout if a step legitimately takes that '
            f'long. Backend message: {text}')


@contextlib.contextmanager
def named_distributed_errors() -> Iterator[None]:
    """Re-raise a collective timeout as :class:`DistributedTimeoutError` with the sentence
    of :func:`describe_distributed_error`; any other error passes unchanged.

    Wrap ``runner.train()`` / ``runner.test()`` in it so that ``run_cli`` prints which rank
    gave up on which operation.
    """
    try:
        yield
    except RuntimeError as err:
        if isinstance(err, DistributedTimeoutError):
            raise
        message = describe_distributed_error(err)
        if message is None:
            raise
        raise DistributedTimeoutError(message) from err


def shutdown_distributed() -> None:
    """Wait for every rank, then destroy the process group.

    Without this, a rank that finishes first exits while gloo's worker threads are
    still joinable and aborts with ``terminate called without an active exception``;
    torchrun then reports the whole job as failed although training completed. The
    barrier is bounded by ``env_cfg.dist_cfg.timeout`` like every collective.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        with named_distributed_errors():
            torch_dist.barrier()
        torch_dist.destroy_process_group()


def find_free_port() -> int:
    """A local TCP port nothing listens on now (for torchrun's rendezvous ``PORT``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]

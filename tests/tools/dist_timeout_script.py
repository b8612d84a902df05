"""Run by tests/tools/test_dist_timeout.py under torchrun with two processes: rank 1 sleeps
instead of joining an all-reduce; rank 0 must give up after the configured timeout and say
which rank it is and which operation timed out."""
import datetime
import sys
import time

import torch
import torch.distributed as dist

from beitlab.utils.runtime import _init_cpu_process_group, named_distributed_errors


def main() -> None:
    timeout = float(sys.argv[1])
    _init_cpu_process_group('gloo', datetime.timedelta(seconds=timeout))
    if dist.get_rank() == 1:
        time.sleep(3600)
    try:
        with named_distributed_errors():
            dist.all_reduce(torch.ones(4))
    except RuntimeError as err:
        print(f'ERROR {type(err).__name__}: {err}', flush=True)
        sys.exit(3)


if __name__ == '__main__':
    main()

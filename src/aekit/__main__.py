"""``python -m aekit``: the CLI, e.g. under ``torchrun --nproc_per_node 2 -m aekit train ...``."""

from .cli import main

if __name__ == "__main__":
    main()

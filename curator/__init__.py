"""curator: seed examples and production feedback in, a better fine-tuned model out."""

from __future__ import annotations

import logging
import os

# No code path may reach a model hub at run time: every model comes from a Python package
# or a local folder.  Users who really want the hub can set these variables themselves.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# On CPUs with AVX512-BF16, importing bitsandbytes asks the hub for a 4-bit CPU kernel
# (kernels-community); without the `kernels` package (and offline) that fails, harmlessly, with a
# warning about a kernel curator does not use.  Real errors of that module still show.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)

__version__ = "0.1.0"
__all__ = ["__version__"]

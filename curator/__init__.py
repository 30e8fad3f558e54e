"""curator: seed examples and production feedback in, a better fine-tuned model out.

Importing curator changes nothing in the process (no environment variable, logger or warning
filter); the ``curator`` command configures the process it runs in (:func:`curator.cli.kit.configure_process`).
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]

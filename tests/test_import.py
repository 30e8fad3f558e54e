"""Importing curator, trainer or evals changes nothing in the process: no environment variable, no warning filter."""

from __future__ import annotations

import json
import subprocess
import sys


def test_import_sets_no_environment_variable_and_no_warning_filter() -> None:
    code = (
        "import json, os, warnings, logging\n"
        "import numpy, pyarrow, duckdb  # third-party imports that set their own filters are not ours\n"
        "env, filters = dict(os.environ), list(warnings.filters)\n"
        "levels = {n: logging.getLogger(n).level for n in ('bitsandbytes.backends.cpu.ops', 'curator')}\n"
        "import curator, trainer, evals, curator.cli, curator.loop.rounds, evals.runner, trainer.api\n"
        "changed = sorted(k for k in set(env) | set(os.environ) if env.get(k) != os.environ.get(k))\n"
        "after = {n: logging.getLogger(n).level for n in levels}\n"
        "print(json.dumps({'env': changed, 'filters': warnings.filters == filters and len(warnings.filters) == len(filters),"
        " 'levels': after == levels}))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"env": [], "filters": True, "levels": True}, out.stderr

"""Where the project's own folders are: the repository root, notebooks/, configs/, data/raw.

cbcv is installed editable from its clone (``make`` does that), so the folders sit beside
``src/``. ``CBCV_HOME`` points elsewhere when the package is installed from a wheel.
"""

from __future__ import annotations

import os
from pathlib import Path

from cbcv.core.errors import CbcvError


def repo_root() -> Path:
    """The folder that holds ``notebooks/`` and ``data/`` (``$CBCV_HOME`` when set)."""
    env = os.environ.get("CBCV_HOME")
    if env:
        root = Path(env).expanduser().resolve()
        if not (root / "notebooks").is_dir():
            raise CbcvError(f"CBCV_HOME={env}: no notebooks/ folder there")
        return root
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file() and (parent / "notebooks").is_dir():
            return parent
    raise CbcvError(
        "cannot find the cbcv project folder (notebooks/, data/); install cbcv editable from its "
        "clone (make test does) or set CBCV_HOME to the clone"
    )


def notebooks_dir() -> Path:
    return repo_root() / "notebooks"

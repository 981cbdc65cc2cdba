"""Where triplegain keeps its files, and where it finds the files it ships (migrations, default config).

The data directory is ``TRIPLEGAIN_HOME`` when set. Otherwise it is the per-user data directory, except for
root: the embedded PostgreSQL server refuses to run as root, so pgserver creates a ``pgserver`` system user and
makes every parent folder of the data directory traversable by others. Under ``/root`` that would open root's
home, so root's default is ``/var/lib/triplegain``, whose parents are world-traversable already.
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
ROOT_DATA_DIR = Path("/var/lib/triplegain")


def home_dir() -> Path:
    """The data directory (created on first use by whoever writes into it)."""
    configured = os.environ.get("TRIPLEGAIN_HOME")
    if configured:
        return Path(configured).expanduser().resolve()
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return ROOT_DATA_DIR
    import platformdirs  # imported when used: ``triplegain coordinator`` pays for its import only when it needs it

    return Path(platformdirs.user_data_dir("triplegain"))


def shipped_dir(name: str) -> Path:
    """A top-level folder of the repository (``migrations``, ``config``) in a checkout or an installed wheel.

    A wheel carries these folders inside the package as ``triplegain/_data/<name>``; an editable install or a
    source checkout reads them from the repository root.
    """
    for candidate in (_PACKAGE_DIR / "_data" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"cannot find the {name}/ folder next to the triplegain package ({_PACKAGE_DIR})")

"""What every command shares: the global ``--config`` option and the settings it loads.

Kept apart from ``commands.py`` so that the command groups in other modules (``triplegain.review.cli``, …) can use
it while ``commands.py`` registers them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from triplegain.config import Settings, load_settings
from triplegain.logs import configure_logging


@dataclass(frozen=True)
class CliOptions:
    config_path: Path | None

    def settings(self) -> Settings:
        """Load and validate the settings, then set up logging from them."""
        settings = load_settings(self.config_path)
        configure_logging(settings.logging)
        return settings


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Settings file (YAML). Default: $TRIPLEGAIN_CONFIG, else the built-in defaults.",
        dir_okay=False,
    ),
]

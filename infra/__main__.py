"""Entry point Pulumi runs (`runtime: python`, `main: __main__.py` in Pulumi.yaml)."""

import sys
from pathlib import Path

# Pulumi runs this file with infra/ as the working directory; make the repository importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from infra.program import main

main()

"""Compare GAN losses for training stability and mode coverage."""

import os
from pathlib import Path

from gancompare.schema import register as _register_schema

# The configs refer to ${oc.env:PROJECT_ROOT} for data and outputs (as lightning-hydra-template
# does), so runs land in the repository whatever the working directory.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("PROJECT_ROOT", str(PROJECT_ROOT))
_register_schema()

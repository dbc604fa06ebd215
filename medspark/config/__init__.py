"""Configuration: typed model and layered loader."""

from medspark.config.loader import load_config
from medspark.config.model import MedsparkConfig

__all__ = ["MedsparkConfig", "load_config"]

"""nomadml: deploy machine learning models on HashiCorp Nomad, safely."""

__version__ = "0.1.0"

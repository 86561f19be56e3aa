"""nbaimaas: AI models as a service, in the notebook (placeholder until api lands)."""
__version__ = "0.1.0"

"""trnsim: an open, simulated Trainium-class AI accelerator and its software stack."""

__version__ = "0.1.0"

"""TruDi: trust-region diffusion policies for massively parallel on-policy RL, as an RSL-RL plug-in."""

__version__ = "0.1.0"

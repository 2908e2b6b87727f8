"""The version of aekit, on the ground floor: what checkpoints, features and exported files record."""

__version__ = "0.1.0"

"""Custody core library: crypto, keys, storage and services. Imports neither ``api`` nor ``cli``."""

__version__ = "0.1.0"

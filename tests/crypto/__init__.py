"""Tests of vault.crypto."""

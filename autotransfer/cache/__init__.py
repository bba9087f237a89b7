"""Frozen-prefix feature cache shared across epochs and trials."""

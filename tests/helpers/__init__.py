"""Reusable test parts: a simulated Defender with a manual clock, TLS material."""

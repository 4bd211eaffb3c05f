"""Dedicated endpoints: what a deployment does on Triton (deploy, replace, stop, retire)."""

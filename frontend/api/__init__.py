"""Routers only: each module declares the routes of one resource; none imports another."""

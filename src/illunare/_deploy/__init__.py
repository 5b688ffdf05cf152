"""Deployments: what ships together, undone together; hot configuration."""

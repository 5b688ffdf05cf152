"""Deployments: packages of steps run in order and undone in reverse, and hot configuration."""

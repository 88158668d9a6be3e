"""Deployment material; ``deployments.owl`` holds the packaged default data files."""

"""Default data of the OWL installation (agencies, routing, retention), shipped as package data:
found with ``importlib.resources.files("deployments.owl")``."""

"""Where the router's view of the world comes from: the Kubernetes watch, or manifests in a folder;
and vLLM queue readings.
"""

"""The Signalbox API: LLMProvider and RoutingPolicy as typed models.

This package is a leaf: it does no I/O and imports neither the operator, the router nor kopf.
The CRD YAML in ``crds/`` is rendered from these models (``hack/update-crds.sh``), and a test
fails when the two drift apart.
"""

GROUP = "signalbox.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

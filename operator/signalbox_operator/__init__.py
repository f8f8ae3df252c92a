"""The Signalbox operator: probes every LLMProvider, drives its circuit, writes status.

Thin kopf glue (``handlers``) around pure decision functions (``circuit``,
``provider_status``, ``policy_status``), with the I/O kept in ``probing``, ``kube`` and
``leader``. The operator is the only writer of status; it never writes spec, labels or
anything Git owns.
"""

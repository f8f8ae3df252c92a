"""``signalbox-check``: run the provider test suite (``selftest``) against one provider.

The provider comes from the cluster by name (``signalbox-check NAME -n NAMESPACE``, with the
current kubeconfig; its key is read from its Secret) or from a manifest file holding the
LLMProvider and, for providers with a key, its Secret (``signalbox-check -f provider.yaml``).
Prints a table of checks with pass/fail, latency and time to first token; ``--json FILE``
(``-`` for standard output) exports the report. Exits 0 when nothing failed, 1 when a check
failed, 2 when the provider could not be read. Keys never appear in the output.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import json
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pydantic
import yaml

from signalbox_api.provider import LLMProvider
from signalbox_operator.probing import refs
from signalbox_operator.selftest import suite
from signalbox_operator.status.provider_status import Refs


class Unusable(Exception):
    """The provider, its file or its Secret cannot be used; the message says why."""


def _secret_data(doc: Mapping[str, Any]) -> dict[str, str]:
    out = {str(k): str(v) for k, v in (doc.get("stringData") or {}).items()}
    for key, value in (doc.get("data") or {}).items():
        try:
            out.setdefault(str(key), base64.b64decode(str(value), validate=True).decode())
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise Unusable(f"Secret key {key!r} is not valid base64 UTF-8 text") from exc
    return out


def from_file(path: Path) -> tuple[LLMProvider, Refs]:
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
    except (OSError, yaml.YAMLError) as exc:
        raise Unusable(f"{path}: {type(exc).__name__}") from exc
    providers = [d for d in docs if d.get("kind") == "LLMProvider"]
    if len(providers) != 1:
        raise Unusable(f"{path}: expected exactly one LLMProvider, found {len(providers)}")
    secrets = {
        str((d.get("metadata") or {}).get("name")): _secret_data(d)
        for d in docs
        if d.get("kind") == "Secret"
    }
    namespace = str((providers[0].get("metadata") or {}).get("namespace") or "default")
    lookups = refs.Lookups(
        secret=lambda key: secrets.get(key[1]),
        service=lambda _key: None,
        endpoints=lambda _key: [],
    )
    return _parsed(providers[0], namespace, lookups)


def from_cluster(name: str, namespace: str) -> tuple[LLMProvider, Refs]:
    import kubernetes  # only this mode needs a cluster

    try:
        kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]
        custom = kubernetes.client.CustomObjectsApi()
        core = kubernetes.client.CoreV1Api()
        obj = custom.get_namespaced_custom_object(
            "signalbox.dev", "v1alpha1", namespace, "llmproviders", name
        )
        if not isinstance(obj, dict):
            raise Unusable(f"LLMProvider {namespace}/{name}: not an object")
    except kubernetes.config.ConfigException as exc:
        raise Unusable(f"no usable kubeconfig: {exc}") from None
    except kubernetes.client.ApiException as exc:
        raise Unusable(f"LLMProvider {namespace}/{name}: HTTP {exc.status}") from None

    def secret(key: tuple[str, str]) -> Mapping[str, str] | None:
        try:
            found = core.read_namespaced_secret(key[1], key[0])
        except kubernetes.client.ApiException:
            return None
        return _secret_data({"data": found.data or {}})

    lookups = refs.Lookups(secret=secret, service=lambda _k: None, endpoints=lambda _k: [])
    return _parsed(obj, namespace, lookups)


def _parsed(
    obj: Mapping[str, Any], namespace: str, lookups: refs.Lookups
) -> tuple[LLMProvider, Refs]:
    try:
        provider = LLMProvider.model_validate(
            {k: v for k, v in obj.items() if k in ("spec", "status")}
        )
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise Unusable(f"invalid LLMProvider: {where}: {first['msg']}") from None
    resolved = refs.resolve(provider.spec, namespace, lookups)
    if provider.spec.endpoint.service is not None and provider.status.endpoint:
        # In-cluster Services: the address the operator resolved.
        resolved = Refs(base_url=provider.status.endpoint, api_key=resolved.api_key)
    if resolved.base_url is None:
        raise Unusable(f"{resolved.reason.value}: {resolved.message}")
    return provider, resolved


async def run_suite(provider: LLMProvider, resolved: Refs, per_check: float) -> list[suite.Result]:
    async with httpx.AsyncClient(follow_redirects=False) as client:
        status = provider.status if provider.status.models else None
        return await suite.Suite(provider.spec, resolved, client, status, per_check).run()


def table(results: Sequence[suite.Result]) -> str:
    rows = [("CHECK", "RESULT", "MODEL", "LATENCY", "TTFT", "MESSAGE")]
    for r in results:
        verdict = "skip" if r.passed is None else "pass" if r.passed else "FAIL"
        rows.append(
            (
                r.check,
                verdict,
                r.model or "-",
                f"{r.latency_ms}ms" if r.latency_ms is not None else "-",
                f"{r.ttft_ms}ms" if r.ttft_ms is not None else "-",
                r.message,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row[:5], widths, strict=True)) + "  " + row[5]
        for row in rows
    )


def report(name: str, results: Sequence[suite.Result]) -> dict[str, Any]:
    return {
        "provider": name,
        "time": datetime.now(UTC).isoformat(),
        "passed": not suite.failed(results),
        "checks": [r.as_dict() for r in results],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="signalbox-check", description=__doc__.split("\n")[0])
    parser.add_argument("name", nargs="?", help="the LLMProvider's name in the cluster")
    parser.add_argument("-n", "--namespace", default="default")
    parser.add_argument(
        "-f", "--file", type=Path, help="a manifest with the LLMProvider and Secret"
    )
    parser.add_argument(
        "--json", dest="json_out", help="write the report as JSON here (- for stdout)"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per check")
    args = parser.parse_args(argv)
    if (args.name is None) == (args.file is None):
        parser.error("give either a provider NAME or -f FILE")
    try:
        provider, resolved = (
            from_file(args.file) if args.file else from_cluster(args.name, args.namespace)
        )
    except Unusable as exc:
        print(f"signalbox-check: {exc}", file=sys.stderr)
        return 2
    name = args.name or args.file.name
    results = asyncio.run(run_suite(provider, resolved, args.timeout))
    out = report(name, results)
    if args.json_out == "-":
        print(json.dumps(out, indent=2))
    else:
        print(table(results))
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(out, indent=2) + "\n")
    return 0 if out["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""Azure OpenAI: OpenAI's bodies at deployment URLs, keyed by ``api-key`` and an
``api-version`` query. The model (deployment) name is one escaped path segment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from signalbox_api.provider import LLMProviderSpec, ProviderType
from signalbox_providers.dialects.base import ClientApi, Kind, Unsupported, path_segment
from signalbox_providers.dialects.openai import Dialect

DEFAULT_API_VERSION = "2024-10-21"


# What may follow the resource's endpoint in a base URL: the API's own path, not a prefix.
AZURE_SUFFIXES = ("/openai/v1", "/openai", "/v1")


@dataclass(frozen=True)
class Azure(Dialect):
    def options(self, spec: LLMProviderSpec) -> Mapping[str, str]:
        return {"api_version": spec.azure.api_version if spec.azure else DEFAULT_API_VERSION}

    def url(self, base_url: str, kind: Kind, model: str, opts: Mapping[str, str]) -> str:
        path = "/chat/completions" if kind == "chat" else "/embeddings"
        deployment = path_segment(model)
        root = self.root(base_url)
        return f"{root}/openai/deployments/{deployment}{path}{self._query(opts)}"

    def native_url(self, api: ClientApi, base_url: str, model: str, opts: Mapping[str, str]) -> str:
        if api not in self.speaks:
            raise Unsupported(f"Azure OpenAI providers do not serve the {api.value} API")
        return self.root(base_url) + "/openai/v1" + "/" + api.value  # the v1 API, by model name

    def _query(self, opts: Mapping[str, str]) -> str:
        return "?api-version=" + quote(opts.get("api_version", DEFAULT_API_VERSION), safe="")


DIALECTS = {
    ProviderType.AZURE_OPENAI: Azure(
        auth_header="api-key",
        bearer=False,
        models_path="/openai/models",
        models_from_root=True,
        api_suffixes=AZURE_SUFFIXES,
        speaks=frozenset({ClientApi.RESPONSES}),
    )
}

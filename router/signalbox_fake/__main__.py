"""``signalbox-fake-provider``: run one fake provider until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from signalbox_api import tracing
from signalbox_fake.server import FakeProvider
from signalbox_fake.state import Faults, Flavor

DEFAULT_MODELS = {
    Flavor.OPENAI: ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small"],
    Flavor.ANTHROPIC: ["claude-sonnet-4-5", "claude-haiku-4-5"],
    Flavor.OLLAMA: ["llama3.2:3b", "nomic-embed-text:latest"],
    Flavor.VLLM: ["meta-llama/Llama-3.1-8B-Instruct"],
    Flavor.LOCALAI: ["gpt-4", "text-embedding-ada-002"],
    Flavor.AZURE: ["gpt-4o-mini", "text-embedding-3-small"],
    Flavor.LLAMACPP: ["tiny-chat", "tiny-embed"],
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="signalbox-fake-provider", description=__doc__)
    parser.add_argument("--flavor", choices=[f.value for f in Flavor], default="openai")
    parser.add_argument("--name", default="fake", help="shown in replies, e.g. 'Hello from NAME'")
    parser.add_argument("--host", default="127.0.0.1", help="a loopback address")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--model", action="append", dest="models", help="repeat for several")
    parser.add_argument(
        "--api-key-env", metavar="VAR", help="require the API key held in this environment variable"
    )
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    import os

    flavor = Flavor(args.flavor)
    faults = Faults(api_key=os.environ[args.api_key_env]) if args.api_key_env else None
    traced = tracing.provider("signalbox-fake-provider")  # off unless OTEL_* asks
    fake = FakeProvider(
        args.name,
        flavor,
        args.models or DEFAULT_MODELS[flavor],
        host=args.host,
        port=args.port,
        faults=faults,
        tracer=None if traced is None else traced.get_tracer("signalbox_fake"),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with fake:
        print(f"fake {flavor.value} provider '{args.name}' listening on {fake.url}", flush=True)
        await stop.wait()
    if traced is not None:
        traced.shutdown()


def main(argv: list[str] | None = None) -> int:
    asyncio.run(serve(parse_args(sys.argv[1:] if argv is None else argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

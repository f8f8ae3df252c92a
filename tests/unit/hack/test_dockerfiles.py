"""The images' Dockerfiles, checked with Docker's own parser (no engine is needed)."""

from __future__ import annotations

import re

import dockerfile
import pytest

from tests.support.cluster import REPO

BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|build-essential|make|git|curl|wget)\b")


def _stages(path: str) -> list[list[dockerfile.Command]]:
    stages: list[list[dockerfile.Command]] = []
    for command in dockerfile.parse_file(str(REPO / path)):
        if command.cmd == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(command)
    return stages


@pytest.mark.parametrize("component", ["operator", "router"])
def test_dockerfile_is_small_pinned_and_non_root(component: str) -> None:
    path = f"{component}/Dockerfile"
    commands = dockerfile.parse_file(str(REPO / path))
    base = next(c for c in commands if c.cmd == "ARG" and c.value[0].startswith("PYTHON_IMAGE="))
    image = base.value[0].split("=", 1)[1]
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", image), "a pinned, slim base image"
    stages = _stages(path)
    assert len(stages) == 2, "a build stage and a runtime stage"
    final = stages[-1]
    users = [c for c in final if c.cmd == "USER"]
    assert users, "the runtime stage sets a user"
    assert users[-1].value[0].split(":")[0].isdigit(), "a numeric user (runAsNonRoot can check)"
    assert users[-1].value[0].split(":")[0] != "0"
    for command in final:
        if command.cmd == "RUN":
            assert not BUILD_TOOLS.search(" ".join(command.value)), "no build tools at run time"
            assert "apt-get install" not in " ".join(command.value)
    copies = [c for c in final if c.cmd == "COPY"]
    assert all("--from=build" in c.flags for c in copies), "only built artifacts are copied in"
    entry = [c for c in final if c.cmd == "ENTRYPOINT"]
    assert entry, "an ENTRYPOINT"
    assert entry[-1].json, "ENTRYPOINT in exec form"
    assert entry[-1].value == (f"signalbox-{component}",)

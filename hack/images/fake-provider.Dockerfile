# syntax=docker/dockerfile:1
# The fake LLM provider as an image, for the end-to-end tests on a node: the router image (which
# installs the whole package) with the fake provider as its entrypoint, and the official openai
# SDK for the application pods the tests run on it. Build from the repository root after the
# router image:
#   docker build -f hack/images/fake-provider.Dockerfile --build-arg ROUTER_IMAGE=signalbox-router .
ARG ROUTER_IMAGE=signalbox-router
FROM ${ROUTER_IMAGE}
LABEL org.opencontainers.image.title="signalbox-fake-provider"
USER 0
COPY hack/images/requirements-client.txt /tmp/
# The client extra (the openai SDK) at uv.lock's versions, every file checked by hash.
RUN /opt/signalbox/bin/pip install --no-cache-dir --require-hashes -r /tmp/requirements-client.txt \
 && rm /tmp/requirements-client.txt
USER 10001:10001
ENTRYPOINT ["signalbox-fake-provider", "--host", "0.0.0.0", "--port", "8000"]

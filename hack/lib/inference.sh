# shellcheck shell=bash disable=SC2034
# Pins and cache paths of the real inference servers (hack/build-inference.sh installs them).
# Source after common.sh. A new pin installs a new copy next to the old one.
LLAMA_CPP_PYTHON_VERSION="0.3.36"
OLLAMA_VERSION="v0.17.4"
MINIAUDIO_SDIST_VERSION="1.71"  # only its miniaudio.h, which the Ollama module zip leaves out

llama_cpp_venv() { echo "$SIGNALBOX_CACHE/llama-cpp-python-$LLAMA_CPP_PYTHON_VERSION"; }
ollama_bin() { echo "$SIGNALBOX_CACHE/bin/ollama-$OLLAMA_VERSION/ollama"; }

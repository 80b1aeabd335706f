# One-line aliases for the nox sessions (see noxfile.py). PROJECT, MODEL, OUT and BASE_IMAGE
# can be set (with no MODEL, package trains and packages examples/python):
#   make package MODEL=path/to/model OUT=out BASE_IMAGE=nvcr.io/nvidia/tritonserver:26.07-py3
#   make package MODEL="models/a models/b"   # several model directories in one image
#   make packager-image PUSH=registry.example.com/ml/triton-packager ARGS="--authfile auth.json"
#     (builds the step image, pushes it, prints the digest-pinned reference for Tekton)
# nox itself is installed on first use into .tools/ (a virtualenv of the project's own), so a
# fresh machine needs only python3, pip and make -- no pip install into the system Python.
TOOLS := .tools
NOX := $(TOOLS)/venv/bin/nox
OUT ?= out
# `make train package PROJECT=examples/onnx`: package what train produced.
ifdef PROJECT
MODEL ?= trained/$(notdir $(patsubst %/,%,$(PROJECT)))
endif
export OUT
export BASE_IMAGE

.PHONY: train setup config base-image verify push demo unit test lint snapshots bench packager-image tekton-check mutation demo-runtime

# pip's --target skips the externally-managed check (PEP 668) of Debian's Python, and the
# virtualenv package needs no python3-venv: together they bootstrap nox without root or apt.
$(NOX):
	python3 -m pip install -q --disable-pip-version-check --target $(TOOLS)/bootstrap 'virtualenv>=20.26'
	PYTHONPATH=$(TOOLS)/bootstrap python3 -m virtualenv -q $(TOOLS)/venv
	$(TOOLS)/venv/bin/python -m pip install -q --disable-pip-version-check 'nox>=2024.4'

# The phases (detect, repository, dockerfile, package): one target each, generated from the
# phase table (packager/phasetable.py).
include phases.mk

train: $(NOX) ; $(NOX) -s train -- $(or $(PROJECT),examples/python)
setup: $(NOX) ; $(NOX) -s setup -- $(ARTIFACT) --output $(or $(MODEL),$(OUT)/artifact)
config: $(NOX) ; $(NOX) -s config -- $(MODEL) $(ARGS)
base-image: $(NOX) ; $(NOX) -s base_image
verify: $(NOX) ; $(NOX) -s verify
push: $(NOX) ; $(NOX) -s push -- $(if $(REGISTRY),--registry $(REGISTRY))
demo: $(NOX) ; $(NOX) -s demo
demo-runtime: $(NOX) ; $(NOX) -s demo_runtime
unit: $(NOX) ; $(NOX) -s unit
test: $(NOX) ; $(NOX) -s lint tests
lint: $(NOX) ; $(NOX) -s lint
snapshots: $(NOX) ; $(NOX) -s snapshots
bench: $(NOX) ; $(NOX) -s bench -- $(ARGS)
mutation: $(NOX) ; $(NOX) -s mutation
packager-image: $(NOX) ; $(NOX) -s packager_image -- $(if $(PUSH),--push $(PUSH)) $(ARGS)
tekton-check: $(NOX) ; $(NOX) -s tekton_check -- deploy/tekton $(ARGS)

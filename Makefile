# One-line aliases for the nox sessions (see noxfile.py). PROJECT, MODEL, OUT and BASE_IMAGE
# can be set (with no MODEL, package trains and packages examples/python):
#   make package MODEL=path/to/model OUT=out BASE_IMAGE=nvcr.io/nvidia/tritonserver:26.07-py3
NOX := python3 -m nox
OUT ?= out
# `make train package PROJECT=examples/onnx`: package what train produced.
ifdef PROJECT
MODEL ?= $(OUT)/trained/$(notdir $(patsubst %/,%,$(PROJECT)))
endif
export OUT
export BASE_IMAGE

.PHONY: train setup package detect repository dockerfile base-image verify push demo test lint snapshots bench

train: ; $(NOX) -s train -- $(or $(PROJECT),examples/python)
setup: ; $(NOX) -s setup -- $(ARTIFACT) --output $(or $(MODEL),$(OUT)/artifact)
package: ; $(NOX) -s package -- $(MODEL)
detect: ; $(NOX) -s detect -- $(MODEL)
repository: ; $(NOX) -s repository -- $(MODEL)
dockerfile: ; $(NOX) -s dockerfile -- $(MODEL)
base-image: ; $(NOX) -s base_image
verify: ; $(NOX) -s verify
push: ; $(NOX) -s push -- $(if $(REGISTRY),--registry $(REGISTRY))
demo: ; $(NOX) -s demo
test: ; $(NOX) -s tests
lint: ; $(NOX) -s lint
snapshots: ; $(NOX) -s snapshots
bench: ; $(NOX) -s bench

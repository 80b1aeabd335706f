# One-line aliases for the nox sessions (see noxfile.py). MODEL, OUT and BASE_IMAGE can be set:
#   make package MODEL=path/to/model OUT=out BASE_IMAGE=nvcr.io/nvidia/tritonserver:26.07-py3
NOX := python3 -m nox
MODEL ?= examples/python/data
OUT ?= out
export OUT
export BASE_IMAGE

.PHONY: package detect repository dockerfile base-image verify push demo test lint snapshots

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

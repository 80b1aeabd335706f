"""Images and the engines that make them.

- builder.py: the `Builder` protocol -- everything the packager asks of an image engine (build,
  the weights layers, bring in a base, inspect, import, export, make runnable for verify, push).
- registry.py: the builders by name (`--builder`), and `select` (what `auto` picks).
- docker.py: the Docker engine (docker SDK); docker_load.py: its `docker load` of the weights.
- buildah.py: buildah (a child process per call; no daemon).

A new builder is one module here and one line in registry.BUILDERS.
"""

# Type stubs for docker-image-py 0.2 (no types of its own): only what components/prepull/images.py uses.

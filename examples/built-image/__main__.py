"""Build an image, deploy it, and pre-pull exactly what is deployed, by digest.

`image.ref` is the pushed image's digest-pinned reference (`ghcr.io/acme/api@sha256:...`),
known only once the build has pushed. The Deployment runs it; `prepull.images_from` reads the
images back from the Deployment, so the pre-pulled list is always what runs: no list kept by
hand, and a rebuild rolls the pre-puller to the new digest in the same update.

Order: images_from reads the Deployment's outputs, so the pre-puller's DaemonSets follow the
Deployment (its first pods pull for themselves); the nodes that join later find the image there.
To pull onto every node *before* a rollout, list the image itself (`"images": [image.ref]`) and
give the Deployment `depends_on=[cache]` instead.
"""

import pulumi
import pulumi_docker_build as docker_build
import pulumi_kubernetes as k8s

import prepull

config = pulumi.Config()
registry = config.require("registry")  # e.g. ghcr.io/acme

image = docker_build.Image(
    "api-image",
    context={"location": "./app"},
    platforms=[docker_build.Platform.LINUX_AMD64],
    push=True,
    tags=[f"{registry}/api:latest"],
)

labels = {"app": "api"}
api = k8s.apps.v1.Deployment(
    "api",
    spec={
        "replicas": 2,
        "selector": {"match_labels": labels},
        "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "api", "image": image.ref}], "node_selector": {"pool": "general"}},
        },
    },
)

cache = prepull.ImagePrePuller(
    "api-images",
    {
        "images": prepull.images_from(api),
        "node_selector": {"pool": "general"},
        "custom_timeouts": {"create": "20m", "update": "20m"},
    },
)

pulumi.export("image", image.ref)
pulumi.export("prepulled", cache.images)

"""Compose pre-pullers with node pools in a Pulumi program (what ``__main__.py`` runs)."""

from pathlib import Path
from typing import Any, Mapping, Optional

import pulumi
import pulumi_kubernetes as k8s

from prepull.component import ImagePrePuller
from prepull.lock.file import lock_stack
from prepull.run_error import reported_plainly
from prepull.stack.connection import check_connection
from prepull.stack.pools import (
    CLOUD_PROVIDERS,
    CONFIG_NAMESPACE,
    OBJECT_KEYS,
    STACK_KEYS,
    PoolProvider,
    StackSpec,
    built,
    karpenter_node_pool,
    namespace_for,
    validate_stack,
    with_prepullers,
)


def read_config(config: Optional[pulumi.Config] = None) -> dict[str, Any]:
    """The ``prepull:*`` keys of the current stack, decoded (arrays and objects from JSON)."""
    config = config or pulumi.Config(CONFIG_NAMESPACE)
    out: dict[str, Any] = {}
    for key in STACK_KEYS:
        value: Any = config.get_object(key) if key in OBJECT_KEYS else config.get(key)
        if value is not None:
            out[key] = value
    return out


def kubernetes_provider(spec: StackSpec) -> k8s.Provider:
    """An explicit provider (never the implicit default): kubeconfig/context from config, else the ambient kubeconfig."""
    return k8s.Provider("k8s", kubeconfig=spec.kubeconfig, context=spec.kube_context)


def deploy(spec: StackSpec, provider: Optional[k8s.Provider] = None) -> Mapping[str, Any]:
    """Declare the namespace, then per pool its pre-puller and (where managed) the node pool after it."""
    cloud_pools = [p for p in spec.pools if p.provider in CLOUD_PROVIDERS]
    if cloud_pools:
        from prepull.stack import clouds  # the cloud SDKs are optional extras: imported only for cloud pools

        for pool in cloud_pools:  # fail before anything is registered, the provider included
            clouds.validate_node_pool(pool)
    spec = built(spec)
    provider = provider or kubernetes_provider(spec)
    k8s_opts = pulumi.ResourceOptions(providers=[provider])
    ns_obj = namespace_for(spec)
    namespace = k8s.core.v1.Namespace("prepull-namespace", metadata=ns_obj["metadata"], opts=k8s_opts)
    outputs: dict[str, dict[str, pulumi.Output[Any]]] = {}
    for pool in spec.pools:
        own = spec.prepullers[pool.name]  # validated and rendered once (load_stack, with_prepullers)
        prepuller = ImagePrePuller._from_plan(
            f"pool-{pool.name}", own.plan, own.objects, opts=pulumi.ResourceOptions(providers=[provider], depends_on=[namespace])
        )
        # The node pool depends on its pre-puller: the DaemonSets exist before any node registers.
        after = pulumi.ResourceOptions(providers=[provider], depends_on=[prepuller])
        if pool.provider is PoolProvider.KARPENTER:
            obj = karpenter_node_pool(pool)
            k8s.apiextensions.CustomResource(
                pool.resource_name,
                api_version=obj["apiVersion"],
                kind=obj["kind"],
                metadata=obj["metadata"],
                spec=obj["spec"],
                opts=after,
            )
        elif pool.provider in CLOUD_PROVIDERS:
            clouds.create_node_pool(pool, depends_on=[prepuller])
        outputs[pool.name] = {"daemonSets": prepuller.daemon_set_names, "images": prepuller.images, "ready": prepuller.ready}
    return outputs


def main(stacks_dir: Optional[Path] = None) -> None:
    """The stack program: read config, apply the stack's lock file if any, declare everything, export per-pool outputs.

    ``stacks_dir`` holds ``prepull.<stack>.lock.yaml`` (default: ``./stacks``, where Pulumi.yaml's
    ``stackConfigDir`` puts the stack files; Pulumi runs the program from the project directory).
    A bad config, lock file or pool raises a RunError with our one-line message: the CLI shows just that.
    """
    with reported_plainly():
        spec = with_prepullers(lock_stack(validate_stack(read_config()), stacks_dir or Path.cwd() / "stacks", pulumi.get_stack()))
        check_connection(spec)  # before the provider registers: it would let both through a preview
        outputs = deploy(spec)
    for name, value in outputs.items():
        pulumi.export(name, value)

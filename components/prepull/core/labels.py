"""The label keys and values prepull writes and selects by: their one home.

The DaemonSet selectors are built from these and must never change (a selector change forces a
DaemonSet replacement); ``status`` finds our objects by :data:`MANAGED_BY_SELECTOR`.
"""

APP = "prepull"
"""The value of :data:`LABEL_NAME` and :data:`LABEL_MANAGED_BY` on everything prepull creates."""
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_DAEMONSET = "prepull.dev/daemonset"
MANAGED_BY_SELECTOR = f"{LABEL_MANAGED_BY}={APP}"
# The kubelet's well-known node labels (GOOS and GOARCH names).
OS_LABEL = "kubernetes.io/os"
ARCH_LABEL = "kubernetes.io/arch"

__all__ = ["APP", "ARCH_LABEL", "LABEL_DAEMONSET", "LABEL_INSTANCE", "LABEL_MANAGED_BY", "LABEL_NAME", "MANAGED_BY_SELECTOR", "OS_LABEL"]

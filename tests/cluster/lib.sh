# Shared by build, up, down and ci: the pins and where each built piece lives.
# shellcheck shell=bash
cluster_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/cluster/versions
. "$cluster_dir/versions"

# The Python host's cache key: its pin and the content of the file compiled beside it, so a change
# to langhost/python_host.go rebuilds the host.
python_host_key() { echo "$PULUMI_HOSTS_VERSION-$(sha256sum "$cluster_dir/langhost/python_host.go" | cut -c1-12)"; }

sdkgen_key() { echo "$PULUMI_VERSION-$(sha256sum "$cluster_dir/langhost/sdkgen_nodejs.go" | cut -c1-12)"; }

# Every built piece as "NAME VERSION", one a line.
cluster_pieces() {
  printf '%s\n' "kubernetes $K8S_VERSION" "etcd $ETCD_VERSION" "kwok $KWOK_VERSION" \
    "pulumi $PULUMI_VERSION" "pulumi-kubernetes $PULUMI_K8S_VERSION" "pulumi-yaml $PULUMI_YAML_VERSION" \
    "pulumi-python $(python_host_key)" "pulumi-nodejs $PULUMI_HOSTS_VERSION" \
    "sdkgen-nodejs $(sdkgen_key)"
}

# piece_dir NAME VERSION: the cache directory of one built piece, keyed by its pin and the recipe.
piece_dir() { echo "$PREPULL_CLUSTER_CACHE/$1-$2-r$RECIPE"; }

# The PATH entries holding every built binary, in a fixed order.
cluster_bin_path() {
  local p="" name version
  while read -r name version; do p="$p${p:+:}$(piece_dir "$name" "$version")/bin"; done < <(cluster_pieces)
  echo "$p"
}

# Shared by build, up, down and ci: the pins and where each built piece lives.
# shellcheck shell=bash
cluster_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/cluster/versions
. "$cluster_dir/versions"

# source_key VERSION FILE: the cache key of a piece compiled with a file of ours (langhost/): its
# pin and the file's content, so a change to the file rebuilds the piece.
source_key() { echo "$1-$(sha256sum "$cluster_dir/langhost/$2" | cut -c1-12)"; }
python_host_key() { source_key "$PULUMI_HOSTS_VERSION" python_host.go; }
sdkgen_key() { source_key "$PULUMI_VERSION" sdkgen_nodejs.go; }

# Every built piece as "NAME VERSION", one a line.
cluster_pieces() {
  printf '%s\n' "kubernetes $K8S_VERSION" "etcd $ETCD_VERSION" "kwok $KWOK_VERSION" \
    "pulumi $PULUMI_VERSION" "pulumi-kubernetes $PULUMI_K8S_VERSION" "pulumi-yaml $PULUMI_YAML_VERSION" \
    "pulumi-python $(python_host_key)" "pulumi-nodejs $PULUMI_HOSTS_VERSION" \
    "sdkgen-nodejs $(sdkgen_key)"
}

# piece_dir NAME VERSION: the cache directory of one built piece, keyed by its pin and the recipe.
piece_dir() { echo "$PREPULL_CLUSTER_CACHE/$1-$2-r$RECIPE"; }

# containerd 2's folder (containerd, containerd-shim-runc-v2, ctr): not on cluster_bin_path, so that
# Debian's containerd 1.6 stays the default; `up DIR --runtime containerd2` runs these by their path.
containerd2_bin() { echo "$(piece_dir containerd2 "$CONTAINERD2_VERSION")/bin"; }

# The PATH entries holding every built binary, in a fixed order.
cluster_bin_path() {
  local p="" name version
  while read -r name version; do p="$p${p:+:}$(piece_dir "$name" "$version")/bin"; done < <(cluster_pieces)
  echo "$p"
}

"""The component from a TypeScript program through the real CLI: a generated SDK, the Node.js host, @pulumi/pulumi from npm.

1. ``pulumi package get-schema components``: the CLI starts the component provider from source
   through the Python language host's RunPlugin, in ``components/venv``, and prints its schema.
2. ``sdkgen-nodejs`` writes the TypeScript SDK from it with the code generator of the CLI's own
   version (``pkg/v3/codegen/nodejs``): what ``pulumi package gen-sdk --language nodejs`` does
   through a current Node.js host; the v3.68.0 host built here lacks that method (docs/e2e.md).
   The SDK is compiled with ``tsc`` as its package.json says and packed with ``npm pack``.
3. A small program (``index.ts``, its ``Pulumi.yaml`` naming the package's folder under
   ``packages:``) installs it with ``@pulumi/pulumi``, ``typescript`` and ``ts-node`` from the npm
   registry, pinned; ``pulumi up`` runs it with ``pulumi-language-nodejs`` and calls the provider's
   ``construct``. Its Kubernetes provider is the default one (the cluster's kubeconfig).
"""

import json
import os
import subprocess
from pathlib import Path

import pytest
from cluster_env import LOCAL, ROOT, kubectl, marks, toolchain_venv, unreachable

# Pinned: the npm packages the program installs (the registry is reachable from CI).
NPM_PACKAGES = {"@pulumi/pulumi": "3.276.0", "typescript": "5.9.3", "ts-node": "10.9.2", "@types/node": "20.19.43"}
NAMESPACE = "prepull-ts"
PROGRAM = """\
import * as prepull from "@pulumi/prepull";

const cache = new prepull.ImagePrePuller("ts-cache", {
    images: ["docker.io/library/alpine:3.21"],
    nodeSelector: { "prepull.dev/pool": "general" },
    namespace: "%s",
    maxUnavailable: %s,
});
export const daemonSets = cache.daemonSetNames;
export const images = cache.images;
"""

pytestmark = [
    *marks(unreachable(("pulumi", "pulumi-language-nodejs", "pulumi-language-python", "sdkgen-nodejs", "npm", "kubectl"))),
    pytest.mark.skipif(not LOCAL, reason="needs the local cluster (tests/cluster/up DIR, then . DIR/env)"),
]


def run(argv: list, cwd: Path, env: dict, stdout_only: bool = False) -> str:
    done = subprocess.run(
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE if stdout_only else subprocess.STDOUT, text=True, timeout=900
    )
    assert done.returncode == 0, f"{' '.join(argv)} (exit {done.returncode}):\n{done.stdout[-5000:]}\n{done.stderr or ''}"
    return done.stdout


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("ts")
    (base / "state").mkdir()
    return {**os.environ, "PULUMI_BACKEND_URL": (base / "state").as_uri(), "PULUMI_CONFIG_PASSPHRASE": "prepull-e2e", "BASE": str(base)}


@pytest.fixture(scope="module")
def sdk(env) -> Path:
    """The generated TypeScript SDK, compiled and packed: a tarball npm installs like a published package."""
    base = Path(env["BASE"])
    toolchain_venv(ROOT / "components")  # the plugin's virtualenv, as `pulumi install` would make it
    (base / "schema.json").write_text(run(["pulumi", "package", "get-schema", str(ROOT / "components")], base, env, stdout_only=True))
    # The CLI had the host install the plugin's dependencies: into components/venv, not the folder itself.
    assert not (ROOT / "components" / "pyvenv.cfg").exists()
    run(["sdkgen-nodejs", "schema.json", "sdk"], base, env)
    sdk = base / "sdk"
    assert json.loads((sdk / "package.json").read_text())["name"] == "@pulumi/prepull"
    run(
        [
            "npm",
            "install",
            "--no-audit",
            "--no-fund",
            f"typescript@{NPM_PACKAGES['typescript']}",
            f"@types/node@{NPM_PACKAGES['@types/node']}",
            f"@pulumi/pulumi@{NPM_PACKAGES['@pulumi/pulumi']}",
        ],
        sdk,
        env,
    )
    run(["npx", "tsc"], sdk, env)
    for name in ("package.json", "README.md"):  # the compiled folder is the package
        (sdk / "bin" / name).write_text((sdk / name).read_text())
    run(["npm", "pack", "--pack-destination", str(base)], sdk / "bin", env)
    return base / "pulumi-prepull-0.1.0.tgz"


def program(env: dict, sdk: Path, max_unavailable: str) -> Path:
    path = Path(env["BASE"]) / f"program-{max_unavailable.replace('-', 'minus')}"
    path.mkdir()
    (path / "Pulumi.yaml").write_text(f"name: ts-consumer\nruntime: nodejs\npackages:\n  prepull: {ROOT / 'components'}\n")
    (path / "index.ts").write_text(PROGRAM % (NAMESPACE, max_unavailable))
    dependencies = {**NPM_PACKAGES, "@pulumi/prepull": f"file:{sdk}"}
    (path / "package.json").write_text(json.dumps({"name": "ts-consumer", "main": "index.ts", "dependencies": dependencies}))
    run(["npm", "install", "--no-audit", "--no-fund"], path, env)
    run(["pulumi", "stack", "init", path.name], path, env)  # one backend: a stack per program
    return path


def test_a_typescript_program_deploys_the_component(env, sdk):
    path = program(env, sdk, "1")
    try:
        run(["pulumi", "up", "--yes", "--non-interactive", "--color", "never"], path, env)
        outputs = json.loads(run(["pulumi", "stack", "output", "--json"], path, env))
        assert outputs["images"] == ["docker.io/library/alpine:3.21"]
        ds = json.loads(kubectl("get", "daemonset", "-n", NAMESPACE, outputs["daemonSets"][0], "-o", "json").stdout)
        assert [c["image"] for c in ds["spec"]["template"]["spec"]["initContainers"] if c["image"].endswith("alpine:3.21")]
        assert ds["status"]["numberReady"] == ds["status"]["desiredNumberScheduled"] >= 1
    finally:
        run(["pulumi", "destroy", "--yes", "--non-interactive", "--color", "never"], path, env)


def test_a_bad_input_from_typescript_names_the_field_in_its_spelling(env, sdk):
    path = program(env, sdk, "-3")
    done = subprocess.run(
        ["pulumi", "up", "--yes", "--non-interactive", "--color", "never"],
        cwd=path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=900,
    )
    assert done.returncode != 0
    assert "property maxUnavailable with value -3 has a problem" in done.stdout, done.stdout[-4000:]
    assert "Traceback" not in done.stdout
    assert "NotFound" in kubectl("get", "namespace", NAMESPACE, check=False).stderr

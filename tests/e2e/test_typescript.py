"""The component from a TypeScript program through the real CLI: the generated SDK, the Node.js host, @pulumi/pulumi from npm.

``pulumi package gen-sdk components --language nodejs`` asks the component provider for its
schema (the CLI starts it through the Python language host's RunPlugin, in ``components/venv``)
and writes the TypeScript SDK, which is compiled with ``tsc`` as its own package.json says. A
small program (``index.ts``) depends on it and on ``@pulumi/pulumi`` from the npm registry; the
CLI runs it with ``pulumi-language-nodejs`` (built by tests/cluster/build from the same tagged
module as the Python host; docs/e2e.md) and calls the provider's ``construct`` for the component.
The Kubernetes provider is the default one (the cluster's kubeconfig, context prepull-local).
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
import * as pulumi from "@pulumi/pulumi";
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
    *marks(unreachable(("pulumi", "pulumi-language-nodejs", "pulumi-language-python", "npm", "kubectl"))),
    pytest.mark.skipif(not LOCAL, reason="needs the local cluster (tests/cluster/up DIR, then . DIR/env)"),
]


def run(argv: list, cwd: Path, env: dict) -> str:
    done = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900)
    assert done.returncode == 0, f"{' '.join(argv)} (exit {done.returncode}):\n{done.stdout[-5000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("ts")
    (base / "state").mkdir()
    return {**os.environ, "PULUMI_BACKEND_URL": (base / "state").as_uri(), "PULUMI_CONFIG_PASSPHRASE": "prepull-e2e", "BASE": str(base)}


@pytest.fixture(scope="module")
def sdk(env) -> Path:
    """The generated TypeScript SDK, compiled (its bin/ is the npm package)."""
    toolchain_venv(ROOT / "components")  # the plugin's virtualenv, as `pulumi install` would make it
    out = Path(env["BASE"]) / "sdk"
    run(["pulumi", "package", "gen-sdk", str(ROOT / "components"), "--language", "nodejs", "--out", str(out)], Path(env["BASE"]), env)
    nodejs = out / "nodejs"
    run(["npm", "install", "--no-audit", "--no-fund", f"typescript@{NPM_PACKAGES['typescript']}",
         f"@pulumi/pulumi@{NPM_PACKAGES['@pulumi/pulumi']}", f"@types/node@{NPM_PACKAGES['@types/node']}"], nodejs, env)
    run(["npx", "tsc"], nodejs, env)
    for extra in ("package.json", "README.md"):
        if (nodejs / extra).exists() and not (nodejs / "bin" / extra).exists():
            (nodejs / "bin" / extra).write_text((nodejs / extra).read_text())
    return nodejs / "bin"


def program(env: dict, sdk: Path, max_unavailable: str) -> Path:
    path = Path(env["BASE"]) / f"program-{max_unavailable.replace('-', 'minus')}"
    path.mkdir()
    (path / "Pulumi.yaml").write_text("name: ts-consumer\nruntime: nodejs\n")
    (path / "index.ts").write_text(PROGRAM % (NAMESPACE, max_unavailable))
    dependencies = {**{k: v for k, v in NPM_PACKAGES.items()}, "@pulumi/prepull": f"file:{sdk}"}
    (path / "package.json").write_text(json.dumps({"name": "ts-consumer", "main": "index.ts", "dependencies": dependencies}))
    (path / "tsconfig.json").write_text(json.dumps({"compilerOptions": {"strict": True, "target": "es2020", "module": "commonjs"}}))
    run(["npm", "install", "--no-audit", "--no-fund"], path, env)
    run(["pulumi", "stack", "init", "dev"], path, env)
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
    done = subprocess.run(["pulumi", "up", "--yes", "--non-interactive", "--color", "never"], cwd=path, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900)
    assert done.returncode != 0
    assert "property maxUnavailable with value -3 has a problem" in done.stdout, done.stdout[-4000:]
    assert "Traceback" not in done.stdout
    assert "NotFound" in kubectl("get", "namespace", NAMESPACE, check=False).stderr

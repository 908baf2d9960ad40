"""Regenerate (or check) the golden files: what the project renders, committed byte for byte.

    python tests/golden/regen.py           # rewrite every golden file, delete stale ones
    python tests/golden/regen.py --check   # exit 1 with a unified diff if any file differs

- ``stacks/<stack>.yaml``: the exact output of ``python -m prepull render --stack <stack>``, one file
  per ``stacks/Pulumi.<stack>.yaml`` (every pool, every object, the header line included).
- ``eks/<scenario>.user-data``: the nodeadm MIME user data an EKS pool's launch template carries
  (decoded from the base64 the template receives), for the pools in ``EKS_SCENARIOS``.

It imports prepull from this checkout's ``components/`` (never an installed copy), so the files
always describe the source tree they are committed with. tests/contracts/test_golden.py compares with them.
"""

import argparse
import contextlib
import difflib
import io
import sys
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
STACKS = ROOT / "stacks"
REGEN_COMMAND = "python tests/golden/regen.py"
# The sub-directories this script owns: a file there that it no longer produces is stale.
OWNED_DIRS = ("stacks", "eks")

if str(ROOT / "components") not in sys.path:
    sys.path.insert(0, str(ROOT / "components"))

# EKS pools with the new-node gate: their launch template's user data is where the kubelet learns the
# taints it registers with. "gpu" has taints with and without a value; "gate-only" has none of its own.
EKS_SETTINGS = {
    "clusterName": "prod",
    "nodeRoleArn": "arn:aws:iam::123456789012:role/nodes",
    "subnetIds": ["subnet-a", "subnet-b"],
    "instanceTypes": ["g6.xlarge"],
    "minSize": 0,
    "maxSize": 4,
    "amiType": "AL2023_x86_64_NVIDIA",
    "diskSize": 200,
}
EKS_SCENARIOS: dict[str, dict] = {
    "gpu": {
        "name": "gpu",
        "provider": "eks",
        "labels": {"prepull.dev/pool": "gpu", "team": "ml"},
        "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}, {"key": "dedicated", "effect": "NoExecute"}],
        "startupGate": True,
        "eks": EKS_SETTINGS,
    },
    "gate-only": {
        "name": "general",
        "provider": "eks",
        "labels": {"prepull.dev/pool": "general"},
        "startupGate": True,
        "eks": {**EKS_SETTINGS, "amiType": "AL2023_ARM_64_STANDARD"},
    },
}
EKS_IMAGES = ["nginx:1.27"]


def stack_names() -> list[str]:
    """Every stack with a ``stacks/Pulumi.<name>.yaml``, sorted."""
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in STACKS.glob("Pulumi.*.yaml"))


def render_stack(stack: str) -> str:
    """What ``python -m prepull render --stack <stack>`` prints (same entry point, run in this process)."""
    from prepull.cli.main import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["render", "--stack", stack, "--stacks-dir", str(STACKS)])
    if code != 0:
        raise RuntimeError(f"python -m prepull render --stack {stack} exited {code}")
    return out.getvalue()


def eks_stack_config(scenario: str) -> dict:
    """The decoded ``prepull:*`` config of a stack holding only the scenario's pool."""
    return {"images": list(EKS_IMAGES), "nodePools": [EKS_SCENARIOS[scenario]]}


def eks_user_data(scenario: str) -> str:
    """The nodeadm user data of the scenario pool's launch template, as text (the template gets it base64-encoded)."""
    from prepull.stack import clouds
    from prepull.stack.pools import load_stack

    (pool,) = load_stack(eks_stack_config(scenario)).pools
    return clouds.nodeadm_user_data(clouds._taints(pool))


def expected() -> dict[str, str]:
    """Every golden file (path relative to tests/golden) and the text it must hold."""
    files = {f"stacks/{stack}.yaml": render_stack(stack) for stack in stack_names()}
    files.update({f"eks/{scenario}.user-data": eks_user_data(scenario) for scenario in sorted(EKS_SCENARIOS)})
    return files


def committed() -> dict[str, bytes]:
    """The golden files on disk, in the directories this script owns."""
    return {
        path.relative_to(HERE).as_posix(): path.read_bytes()
        for directory in OWNED_DIRS
        for path in sorted((HERE / directory).glob("*"))
        if path.is_file()
    }


def diff(name: str, want: bytes, got: str) -> str:
    """A unified diff from the committed file to the current output, and how to accept the change."""
    lines = difflib.unified_diff(
        want.decode("utf-8", errors="replace").splitlines(keepends=True),
        got.splitlines(keepends=True),
        fromfile=f"tests/golden/{name} (committed)",
        tofile=f"tests/golden/{name} (current output)",
    )
    return "".join(lines) + f"\nIf the change is intended, run `{REGEN_COMMAND}` and commit the result.\n"


def mismatch(name: str, got: str) -> Optional[str]:
    """Why ``got`` is not byte for byte the golden file ``name`` (a diff, or that it is missing); None when it is."""
    path = HERE / name
    if not path.is_file():
        return f"tests/golden/{name}: missing; run `{REGEN_COMMAND}`"
    want = path.read_bytes()
    return None if want == got.encode("utf-8") else diff(name, want, got)


def assert_matches(name: str, got: str) -> None:
    """For tests: an AssertionError carrying the readable diff when ``got`` is not the golden file ``name``."""
    __tracebackhide__ = True  # pytest then shows the diff, not this helper's frame
    message = mismatch(name, got)
    if message:
        raise AssertionError(message)


def problems() -> list[str]:
    """One readable message per golden file that is missing, stale or different (empty: all match)."""
    want, have = expected(), committed()
    out = [f"tests/golden/{name}: stale (nothing produces it any more); run `{REGEN_COMMAND}`" for name in sorted(set(have) - set(want))]
    return out + [message for name, text in sorted(want.items()) if (message := mismatch(name, text))]


def write() -> list[str]:
    """Rewrite every golden file and delete stale ones; returns what changed."""
    want, have = expected(), committed()
    changed = []
    for name in sorted(set(have) - set(want)):
        (HERE / name).unlink()
        changed.append(f"removed {name}")
    for name, text in want.items():
        if have.get(name) != text.encode("utf-8"):
            (HERE / name).parent.mkdir(parents=True, exist_ok=True)
            (HERE / name).write_bytes(text.encode("utf-8"))  # bytes: no newline translation on any platform
            changed.append(f"wrote {name}")
    return changed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog=REGEN_COMMAND, description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 with a diff when a file differs")
    args = parser.parse_args(argv)
    if args.check:
        found = problems()
        print("\n".join(found) if found else "golden files up to date")
        return 1 if found else 0
    changed = write()
    print("\n".join(changed) if changed else "golden files already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())

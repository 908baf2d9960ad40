"""Entry point the Pulumi CLI runs: builds the one PolicyPack and serves it (blocks)."""

import sys
from pathlib import Path

# The CLI runs this directory with the directory itself on sys.path; its
# parent makes the pack importable as the `policies` package the tests use.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402

from policies.prepull_policies import POLICIES  # noqa: E402

PolicyPack(
    name="prepull-policies",
    # Every policy sets its own level; this applies only to policies that do not.
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=POLICIES,
)

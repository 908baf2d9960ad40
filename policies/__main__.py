"""Entry point the Pulumi CLI runs: builds the one PolicyPack and serves it (blocks).

The CLI runs this folder as a program (``python -m pulumi.policy <engine> <folder>``,
which is ``runpy.run_path(<folder>)``), so the folder itself is first on ``sys.path``
and ``prepull_policies`` beside this file imports by its own name, whatever the
folder is called. ``prepull`` comes from the pack's virtualenv (requirements.txt).
"""

from pulumi_policy import EnforcementLevel, PolicyPack

from prepull_policies import POLICIES

PolicyPack(
    name="prepull-policies",
    # Every policy sets its own level; this applies only to policies that do not.
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=POLICIES,
)

"""The rendered objects of every stack and the EKS user data, compared byte for byte with tests/golden/.

A difference fails with a unified diff; if it is intended, ``python tests/golden/regen.py`` rewrites
the files (tests/golden/README.md).
"""

import os
import subprocess
import sys

import pytest

from golden import regen

STACKS = regen.stack_names()


def test_the_shipped_stacks_have_golden_files():
    assert {"dev", "prod"} <= set(STACKS)


@pytest.mark.parametrize("stack", STACKS)
def test_render_output_is_the_golden_file(stack):
    regen.assert_matches(f"stacks/{stack}.yaml", regen.render_stack(stack))


@pytest.mark.parametrize("scenario", sorted(regen.EKS_SCENARIOS))
def test_eks_user_data_is_the_golden_file(scenario):
    regen.assert_matches(f"eks/{scenario}.user-data", regen.eks_user_data(scenario))


def test_no_golden_file_is_missing_or_stale():
    # A removed stack or scenario must not leave a file behind that nothing checks any more.
    assert set(regen.committed()) == set(regen.expected())


@pytest.mark.parametrize("seed", ["0", "1"])
def test_the_documented_command_checks_from_any_directory_and_hash_seed(tmp_path, seed):
    # Run as documented, as a script, from elsewhere: it puts this checkout's components/ on the path itself.
    # Other hash seeds: no set or dict ordering leaks into the output.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONHASHSEED": seed}
    out = subprocess.run(
        [sys.executable, str(regen.HERE / "regen.py"), "--check"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert (out.returncode, out.stdout, out.stderr) == (0, "golden files up to date\n", "")


def test_a_difference_is_reported_as_a_diff_naming_the_line_and_the_fix():
    want = regen.committed()["stacks/dev.yaml"]
    got = want.decode().replace("imagePullPolicy: IfNotPresent", "imagePullPolicy: Always", 1)
    message = regen.diff("stacks/dev.yaml", want, got)
    lines = message.splitlines()
    assert lines[:2] == ["--- tests/golden/stacks/dev.yaml (committed)", "+++ tests/golden/stacks/dev.yaml (current output)"]
    changed = [line for line in lines[2:] if line.startswith(("-", "+"))]
    assert changed == ["-        imagePullPolicy: IfNotPresent", "+        imagePullPolicy: Always"]
    assert lines[-1] == "If the change is intended, run `python tests/golden/regen.py` and commit the result."

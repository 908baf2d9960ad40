"""prepull:kubeconfig and prepull:kubeContext, checked before anything registers (the provider lets both through a preview)."""

import json

import pytest
import yaml

from prepull import PrePullInputError
from prepull.stack.connection import check_connection
from prepull.stack.pools import validate_stack

POOLS = [{"name": "general", "provider": "existing", "labels": {"pool": "general"}}]


def spec(**connection):
    return validate_stack({"images": ["nginx:1.27"], "nodePools": POOLS, **connection})


def kubeconfig(*contexts: str) -> str:
    return yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "contexts": [{"name": c, "context": {}} for c in contexts]})


def error(s, environ) -> PrePullInputError:
    with pytest.raises(PrePullInputError) as err:
        check_connection(s, environ)
    return err.value


def test_a_kubeconfig_path_that_names_no_file_is_refused(tmp_path):
    missing = str(tmp_path / "nowhere" / "kubeconfig")
    err = error(spec(kubeconfig=missing), {})
    assert str(err) == f"prepull:kubeconfig: names no readable file: give the path of a kubeconfig file, or its contents (got {missing!r})"


def test_a_kubeconfig_file_or_contents_is_accepted(tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text(kubeconfig("a"))
    check_connection(spec(kubeconfig=str(path), kubeContext="a"), {})
    check_connection(spec(kubeconfig=kubeconfig("a"), kubeContext="a"), {})
    check_connection(spec(kubeconfig=json.dumps({"apiVersion": "v1", "contexts": [{"name": "a"}]}), kubeContext="a"), {})


def test_a_context_the_kubeconfig_lacks_is_refused_naming_the_ones_it_has(tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text(kubeconfig("prod", "dev"))
    err = error(spec(kubeconfig=str(path), kubeContext="staging"), {})
    assert err.field == "prepull:kubeContext" and err.value == "staging"
    assert err.reason == f"is not a context of the kubeconfig {path}; its contexts: dev, prod"


def test_the_context_is_looked_up_where_the_provider_looks(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.write_text(kubeconfig("one"))
    second.write_text(kubeconfig("two"))
    environ = {"KUBECONFIG": f"{first}:{tmp_path / 'missing'}:{second}", "HOME": str(tmp_path)}
    check_connection(spec(kubeContext="two"), environ)
    assert "its contexts: one, two" in error(spec(kubeContext="three"), environ).reason
    (tmp_path / ".kube").mkdir()
    (tmp_path / ".kube" / "config").write_text(kubeconfig("home"))
    check_connection(spec(kubeContext="home"), {"HOME": str(tmp_path)})
    assert f"is not a context of {tmp_path / '.kube' / 'config'}" in error(spec(kubeContext="x"), {"HOME": str(tmp_path)}).reason


def test_with_no_kubeconfig_to_read_the_provider_has_the_say(tmp_path):
    check_connection(spec(kubeContext="anything"), {"HOME": str(tmp_path)})
    check_connection(spec(kubeContext="anything"), {"KUBECONFIG": str(tmp_path / "missing"), "HOME": str(tmp_path)})


def test_the_stack_program_refuses_them_before_registering_anything(run_program, tmp_path):
    from prepull.program import main

    seen = {}

    def program():
        try:
            main(stacks_dir=tmp_path)
        except PrePullInputError as err:
            seen["error"] = err

    config = {"prepull:images": '["nginx:1.27"]', "prepull:nodePools": json.dumps(POOLS), "prepull:kubeconfig": str(tmp_path / "none")}
    run = run_program(program, config=config)
    assert seen["error"].field == "prepull:kubeconfig"
    # Nothing of ours (whether the Stack resource itself registered first is the engine's timing).
    assert [r.type for r in run.requests if r.type != "pulumi:pulumi:Stack"] == []

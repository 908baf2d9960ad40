"""The lock file (pure): its format, reading it back, and applying it to a stack.

Registry access is tested in test_registry.py; here the lock is written by hand.
"""

import copy
import textwrap

import pytest
import yaml

from prepull import PrePullInputError
from prepull.cli.main import main
from prepull.core.images import parse_image
from prepull.lock.file import (
    Lock,
    LockEntry,
    LockedPlatform,
    LockError,
    apply_lock,
    dump_lock,
    lock_changes,
    lock_file_name,
    parse_lock,
)
from prepull.stack.pools import load_stack, prepuller_args, stack_manifests, validate_stack, with_prepullers

D = {name: "sha256:" + ch * 64 for name, ch in (("index", "a"), ("amd", "b"), ("arm", "c"), ("app", "d"), ("other", "e"))}
MULTI = "docker.io/library/python:3.13-slim"
AMD_ONLY = "ghcr.io/acme/trainer:2.3.1"


def entry(digest: str, **platforms) -> LockEntry:
    """An entry; platforms as ``linux_amd64=(digest, size)``."""
    plats = {k.replace("_", "/"): LockedPlatform(d, s) for k, (d, s) in platforms.items()}
    media = "application/vnd.oci.image.index.v1+json" if len(plats) > 1 else "application/vnd.oci.image.manifest.v1+json"
    return LockEntry(digest, media, plats)


LOCK = Lock(
    {
        MULTI: entry(D["index"], linux_amd64=(D["amd"], 40_000_000), linux_arm64=(D["arm"], 38_000_000)),
        AMD_ONLY: entry(D["app"], linux_amd64=(D["app"], 9_000_000_000)),
    }
)


def config(pool_extra=None, images=(MULTI,), pool_images=(AMD_ONLY,)) -> dict:
    pool = {"name": "general", "provider": "existing", "labels": {"pool": "general"}, "images": list(pool_images), **(pool_extra or {})}
    return {"images": list(images), "nodePools": [pool]}


def karpenter(arches) -> dict:
    req = [{"key": "kubernetes.io/arch", "operator": "In", "values": list(arches)}]
    return {"provider": "karpenter", "karpenter": {"nodeClassRef": {"group": "g", "kind": "K", "name": "n"}, "requirements": req}}


# ---------------------------------------------------------------- the format


def test_the_file_name_is_not_taken_for_a_stack_file():
    assert lock_file_name("prod") == "prepull.prod.lock.yaml"
    assert not lock_file_name("prod").startswith("Pulumi.")


def test_dump_is_sorted_commented_and_reads_back_the_same():
    text = dump_lock(LOCK, "prod")
    assert text.startswith("# prepull lock file of Pulumi.prod.yaml, written by `python -m prepull lock --stack prod`")
    assert parse_lock(text, "f") == LOCK
    doc = yaml.safe_load(text)
    assert list(doc) == ["version", "images"] and doc["version"] == 1
    assert list(doc["images"]) == sorted(doc["images"])
    assert doc["images"][AMD_ONLY] == {
        "digest": D["app"],
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "platforms": {"linux/amd64": {"digest": D["app"], "size": 9_000_000_000}},
    }


def test_dump_does_not_depend_on_insertion_order():
    reordered = Lock(dict(reversed(list(LOCK.images.items()))))
    assert dump_lock(reordered, "prod") == dump_lock(LOCK, "prod")


def test_one_moved_tag_is_a_diff_of_that_entry_only():
    moved = Lock({**LOCK.images, AMD_ONLY: entry(D["other"], linux_amd64=(D["other"], 1))})
    before, after = dump_lock(LOCK, "p").splitlines(), dump_lock(moved, "p").splitlines()
    changed = [i for i, (a, b) in enumerate(zip(before, after)) if a != b]
    assert len(before) == len(after) and changed
    entry_lines = range(after.index(f"  {AMD_ONLY}:"), after.index(f"  {AMD_ONLY}:") + 7)  # key, digest, mediaType, 4 of platforms
    assert all(i in entry_lines for i in changed)
    assert lock_changes(LOCK, moved) == [f"changed  {AMD_ONLY}: {D['app']} -> {D['other']}"]


def test_lock_changes_lists_added_and_removed():
    smaller = Lock({MULTI: LOCK.images[MULTI]})
    assert lock_changes(smaller, LOCK) == [f"added    {AMD_ONLY} -> {D['app']}"]
    assert lock_changes(LOCK, smaller) == [f"removed  {AMD_ONLY} (no longer in the stack)"]
    assert lock_changes(None, smaller) == [f"added    {MULTI} -> {D['index']}"]


def _doc() -> dict:
    return yaml.safe_load(dump_lock(LOCK, "p"))


def _mutated(path, value):
    doc = copy.deepcopy(_doc())
    target = doc
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return yaml.safe_dump(doc)


@pytest.mark.parametrize(
    "path, value, field, reason",
    [
        (("version",), 2, "f: version", "unsupported lock file version"),
        (("images", MULTI, "digest"), "sha256:abc", f"f: images[{MULTI!r}].digest", "must be a digest"),
        (("images", MULTI, "digest"), KeyError, f"f: images[{MULTI!r}].digest", "is required"),
        (("images", MULTI, "extra"), 1, f"f: images[{MULTI!r}].extra", "unknown field"),
        (
            ("images", MULTI, "platforms", "linux/amd64", "size"),
            -1,
            f"f: images[{MULTI!r}].platforms['linux/amd64'].size",
            "must not be negative",
        ),
        (("images", MULTI, "platforms", "linux/amd64", "size"), "1", f"f: images[{MULTI!r}].platforms['linux/amd64'].size", "whole number"),
        (("images", MULTI, "platforms", "amd64"), {"digest": D["amd"], "size": 1}, f"f: images[{MULTI!r}].platforms['amd64']", "os/arch"),
        (
            ("images", "python:3.13-slim"),
            {"digest": D["amd"], "mediaType": "x", "platforms": {}},
            "f: images['python:3.13-slim']",
            "canonical form",
        ),
    ],
)
def test_a_malformed_lock_names_the_file_the_entry_and_the_field(path, value, field, reason):
    with pytest.raises(LockError) as err:
        parse_lock(_mutated(path, value), "f")
    assert err.value.field == field and reason in err.value.reason


def test_a_key_with_a_digest_must_match_its_entry():
    key = f"{MULTI}@{D['other']}"
    text = yaml.safe_dump({"version": 1, "images": {key: {"digest": D["index"], "mediaType": "m", "platforms": {}}}})
    with pytest.raises(LockError, match="differs from the digest in the reference"):
        parse_lock(text, "f")


def test_not_yaml_is_a_lock_error():
    with pytest.raises(LockError, match="is not valid YAML"):
        parse_lock("images: [", "f")


# ---------------------------------------------------------------- applying it


def test_locked_images_are_repo_tag_at_digest():
    spec = apply_lock(load_stack(config()), LOCK, "f", "dev")
    texts = (f"{MULTI}@{D['index']}", f"{AMD_ONLY}@{D['app']}")
    assert tuple(r.original for r in spec.pools[0].images) == texts
    # Built from the parsed parts, they are what parsing their text gives.
    assert spec.pools[0].images == tuple(parse_image(t, "") for t in texts)


def test_a_stack_image_missing_from_the_lock_names_it_and_says_to_run_lock():
    with pytest.raises(PrePullInputError) as err:
        apply_lock(load_stack(config(pool_images=(AMD_ONLY, "nginx:1.27"))), LOCK, "stacks/prepull.dev.lock.yaml", "dev")
    assert err.value.field == "nodePools.general.images" and err.value.value == "nginx:1.27"
    assert "is not in the lock file stacks/prepull.dev.lock.yaml: run `python -m prepull lock --stack dev`" in err.value.reason


def test_a_lock_entry_no_stack_image_uses_is_stale():
    with pytest.raises(LockError) as err:
        apply_lock(load_stack(config(pool_images=())), LOCK, "f", "dev")
    assert err.value.value == [AMD_ONLY] and "stale" in err.value.reason and "lock --stack dev" in err.value.reason


def test_sizes_reach_the_prepuller_and_balance_its_lanes():
    spec = apply_lock(load_stack(config(pool_extra={"lanes": 2}, pool_images=(AMD_ONLY, "nginx:1.27"))), _with_nginx(), "f", "dev")
    args = prepuller_args(spec, spec.pools[0])
    assert {ref.original: size for ref, size in args["image_sizes"].items()} == {
        f"{MULTI}@{D['index']}": 40_000_000,
        f"{AMD_ONLY}@{D['app']}": 9_000_000_000,
        _NGINX_LOCKED: 1_000,
    }
    lanes = [o for o in stack_manifests(spec) if o["kind"] == "DaemonSet"]
    images = [[c["image"] for c in ds["spec"]["template"]["spec"]["initContainers"][1:]] for ds in lanes]
    # Round-robin would pair the 9 GB image with nginx; by size it is alone.
    assert images == [[f"{AMD_ONLY}@{D['app']}"], [f"{MULTI}@{D['index']}", _NGINX_LOCKED]]


_NGINX = "docker.io/library/nginx:1.27"
_NGINX_LOCKED = f"{_NGINX}@{D['other']}"


def _with_nginx() -> Lock:
    return Lock({**LOCK.images, _NGINX: entry(D["other"], linux_amd64=(D["other"], 1_000))})


def test_an_amd64_only_image_on_an_arm64_pool_is_rejected_naming_pool_image_and_platform():
    with pytest.raises(PrePullInputError) as err:
        apply_lock(load_stack(config(pool_extra=karpenter(["amd64", "arm64"]))), LOCK, "f", "prod")
    assert err.value.field == "nodePools.general.images" and err.value.value == AMD_ONLY
    assert "has no linux/arm64 image (locked platforms: linux/amd64)" in err.value.reason
    assert "karpenter.requirements[0]" in err.value.reason


def test_the_platform_check_uses_the_pools_declared_platforms():
    with pytest.raises(PrePullInputError, match="has no linux/arm64 image"):
        apply_lock(load_stack(config(pool_extra={"platforms": ["linux/arm64"]})), LOCK, "f", "dev")
    apply_lock(load_stack(config(pool_extra={"platforms": ["linux/amd64"]})), LOCK, "f", "dev")


def test_image_platforms_limit_what_the_check_asks_for():
    extra = {**karpenter(["amd64", "arm64"]), "prepuller": {"imagePlatforms": {AMD_ONLY: ["linux/amd64"]}}}
    spec = apply_lock(load_stack(config(pool_extra=extra)), LOCK, "f", "prod")
    assert {k.original: v for k, v in spec.pools[0].prepuller["image_platforms"].items()} == {f"{AMD_ONLY}@{D['app']}": ["linux/amd64"]}
    arches = {ds["metadata"]["name"] for ds in stack_manifests(spec) if ds["kind"] == "DaemonSet"}
    assert arches == {"general-amd64", "general-other"}


def test_unknown_architectures_change_nothing():
    apply_lock(load_stack(config()), LOCK, "f", "dev")  # an existing pool: its nodes' architectures are not known


def test_two_tags_of_one_digest_are_reported_as_the_same_image():
    lock = Lock({MULTI: LOCK.images[MULTI], "docker.io/library/python:3.13": LOCK.images[MULTI]})
    with pytest.raises(PrePullInputError) as err:
        # The locked pre-pullers are built (and validated) by with_prepullers, as the stack program and render do.
        with_prepullers(apply_lock(validate_stack(config(pool_images=("python:3.13",))), lock, "f", "dev"))
    assert "duplicate of images[0]" in err.value.reason and f"docker.io/library/python@{D['index']}" in err.value.reason


# ---------------------------------------------------------------- render and check read it


def _stack_dir(tmp_path, lock: Lock, pools_yaml: str):
    (tmp_path / "Pulumi.dev.yaml").write_text(textwrap.dedent(pools_yaml))
    (tmp_path / "prepull.dev.lock.yaml").write_text(dump_lock(lock, "dev"))
    return tmp_path


STACK = f"""\
    config:
      prepull:images: [{MULTI}]
      prepull:nodePools:
        - name: general
          provider: existing
          labels: {{pool: general}}
          images: [{AMD_ONLY}]
    """


def test_render_uses_the_lock(tmp_path, capsys):
    assert main(["render", "--stack", "dev", "--stacks-dir", str(_stack_dir(tmp_path, LOCK, STACK))]) == 0
    out = capsys.readouterr().out
    assert f"image: {MULTI}@{D['index']}" in out and f"image: {AMD_ONLY}@{D['app']}" in out


def test_render_and_check_refuse_a_stale_lock(tmp_path, capsys):
    stale = Lock({**LOCK.images, _NGINX: LOCK.images[MULTI]})
    for command in ("render", "check"):
        assert main([command, "--stack", "dev", "--stacks-dir", str(_stack_dir(tmp_path, stale, STACK))]) == 2
        err = capsys.readouterr().err
        assert "prepull.dev.lock.yaml: images: 1 entry matches no image of Pulumi.dev.yaml" in err and _NGINX in err


def test_check_refuses_an_image_missing_from_the_lock(tmp_path, capsys):
    partial = Lock({MULTI: LOCK.images[MULTI]})
    assert main(["check", "--stack", "dev", "--stacks-dir", str(_stack_dir(tmp_path, partial, STACK))]) == 2
    err = capsys.readouterr().err
    assert f"prepull:nodePools.general.images: is not in the lock file {tmp_path / 'prepull.dev.lock.yaml'}" in err and AMD_ONLY in err


def test_a_hand_broken_lock_file_is_a_usage_error(tmp_path, capsys):
    _stack_dir(tmp_path, LOCK, STACK)
    (tmp_path / "prepull.dev.lock.yaml").write_text("version: 1\nimages: {x: 1}\n")
    assert main(["render", "--stack", "dev", "--stacks-dir", str(tmp_path)]) == 2
    assert "prepull.dev.lock.yaml: images['x']" in capsys.readouterr().err


def test_another_stacks_lock_file_is_refused_and_left_as_it_is(tmp_path, capsys):
    """prod's lock file copied over dev's: its entries match none of dev's images; nothing is rewritten."""
    other = dump_lock(Lock({_NGINX: LOCK.images[MULTI]}), "prod")
    _stack_dir(tmp_path, LOCK, STACK)
    (tmp_path / "prepull.dev.lock.yaml").write_text(other)
    for command in ("render", "check"):
        assert main([command, "--stack", "dev", "--stacks-dir", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert f"prepull:nodePools.general.images: is not in the lock file {tmp_path / 'prepull.dev.lock.yaml'}" in err
        assert "run `python -m prepull lock --stack dev`" in err
    assert (tmp_path / "prepull.dev.lock.yaml").read_text() == other


# ---------------------------------------------------------------- the stack program reads it


def _program_config() -> dict:
    import json

    pools = [{"name": "general", "provider": "existing", "labels": {"pool": "general"}, "images": [AMD_ONLY]}]
    return {"prepull:images": json.dumps([MULTI]), "prepull:nodePools": json.dumps(pools)}


def test_the_stack_program_deploys_the_locked_digests(run_program, tmp_path):
    from prepull.program import main as program

    (tmp_path / "prepull.dev.lock.yaml").write_text(dump_lock(LOCK, "dev"))
    run = run_program(lambda: program(stacks_dir=tmp_path), config=_program_config(), stack="dev")
    (ds,) = [run.state(r) for r in run.requests if r.type == "kubernetes:apps/v1:DaemonSet"]
    images = [c["image"] for c in ds["spec"]["template"]["spec"]["initContainers"][1:]]
    assert images == [f"{MULTI}@{D['index']}", f"{AMD_ONLY}@{D['app']}"]


def test_the_stack_program_refuses_a_stale_lock_before_registering_anything(run_program, tmp_path):
    from prepull.program import main as program

    (tmp_path / "prepull.prod.lock.yaml").write_text(dump_lock(Lock({MULTI: LOCK.images[MULTI]}), "prod"))
    seen = {}

    def run():
        try:
            program(stacks_dir=tmp_path)
        except PrePullInputError as err:
            seen["error"] = err

    result = run_program(run, config=_program_config(), stack="prod")
    assert seen["error"].value == AMD_ONLY and "lock --stack prod" in seen["error"].reason
    assert result.requests == []

"""``python -m prepull lock --stack <env> [--check]``: resolve every stack image and write the lock file.

Every image of the stack (global and per pool) is resolved through its
registry (prepull.lock.registry). Only when *all* of them resolved is the lock file
written, in one ``os.replace``: a registry that is down, slow, denies access,
lacks a tag or serves a malformed manifest leaves the existing file exactly as
it was, and the command exits 3 with one line per image that failed.

``--check`` resolves the same way and writes nothing: exit 0 when the file
already says what ``lock`` would write, 1 with the differences when it is stale
(a tag moved, an image was added or removed), 3 on a registry fault.
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Optional

from prepull.cli.common import EXIT_OK, EXIT_PROBLEMS, EXIT_UNREACHABLE, UsageError, load_spec, prefixed
from prepull.core.images import ImageRef
from prepull.errors import PrePullInputError
from prepull.lock.file import Lock, LockEntry, LockError, apply_lock, dump_lock, lock_changes, lock_file_name, parse_lock
from prepull.stack.pools import StackSpec

if TYPE_CHECKING:
    # requests (the `lock` extra) is imported only when the command runs.
    from prepull.lock.registry import RegistryClient, RegistryError

LOCK_EXTRA_HINT = "lock needs requests: pip install 'prepull[lock]'"
# Faults that say the whole registry is gone: its other images are not tried (each would wait for the timeout again).
HOST_FAULTS = ("unreachable", "timeout")


def report(line: str) -> None:
    """One progress line on stderr (stdout stays free for nothing but the result)."""
    print(line, file=sys.stderr, flush=True)


def stack_images(spec: StackSpec) -> dict[str, ImageRef]:
    """{canonical reference: ImageRef} of every image of every pool, sorted by reference."""
    refs: dict[str, ImageRef] = {}
    for pool in spec.pools:
        for ref in pool.images:
            refs.setdefault(ref.canonical, ref)
    return dict(sorted(refs.items()))


def _previous(path: Path) -> Optional[Lock]:
    """The existing lock, to reuse unchanged entries; an unreadable one is replaced (and said so)."""
    if not path.exists():
        return None
    try:
        return parse_lock(path.read_text(encoding="utf-8"), str(path))
    except (LockError, OSError, UnicodeDecodeError) as err:
        report(f"warning: ignoring the existing {path.name}, which cannot be used ({err}); every image is resolved again")
        return None


def resolve_all(
    client: "RegistryClient", refs: Mapping[str, ImageRef], previous: Optional[Lock]
) -> tuple[dict[str, LockEntry], list["RegistryError"]]:
    """({canonical: LockEntry}, [RegistryError]): every image tried, except on a registry already found down or slow."""
    from prepull.lock.registry import RegistryError, resolve

    entries: dict[str, LockEntry] = {}
    errors: list[RegistryError] = []
    down: dict[str, RegistryError] = {}  # by registry host
    for canonical, ref in refs.items():
        if ref.domain in down:
            errors.append(RegistryError(ref.original, down[ref.domain].kind, f"not tried: {down[ref.domain].reason}"))
            continue
        old = previous.images.get(canonical) if previous else None
        try:
            entries[canonical] = resolve(client, ref, old)
        except RegistryError as err:
            errors.append(err)
            if err.kind in HOST_FAULTS:
                down[ref.domain] = err
            continue
        entry = entries[canonical]
        report(f"{'unchanged' if entry == old else 'resolved '} {canonical} -> {entry.digest} ({', '.join(sorted(entry.platforms))})")
    return entries, errors


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` in one step: a reader (or a crash) sees the old file or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _client(args: argparse.Namespace) -> "RegistryClient":
    try:
        from prepull.lock.registry import RegistryClient
    except ImportError:
        raise UsageError(LOCK_EXTRA_HINT) from None
    if args.timeout <= 0:
        raise UsageError(f"--timeout must be a positive number of seconds (got {args.timeout:g})")
    return RegistryClient(plain_http=args.plain_http or (), timeout=args.timeout)


def _warn_platforms(spec: StackSpec, lock: Lock, path: Path, stack: str) -> None:
    """Say now what render, check and pulumi up will reject (the lock itself is right: it records what exists)."""
    try:
        apply_lock(spec, lock, str(path), stack)
    except PrePullInputError as err:
        report(f"warning: {prefixed(err)}")


def lock_command(args: argparse.Namespace) -> int:
    """Resolve, then write the lock file (or with --check compare it); exit codes in the module docstring."""
    path, spec = load_spec(args.stacks_dir, args.stack, locked=False)  # the lock is what is being made
    client = _client(args)
    lock_path = path.with_name(lock_file_name(args.stack))
    previous = _previous(lock_path)
    entries, errors = resolve_all(client, stack_images(spec), previous)
    for err in errors:
        print(f"prepull: error: {err}", file=sys.stderr)
    if errors:
        print(f"prepull: {len(errors)} image(s) could not be resolved; {lock_path} was left unchanged", file=sys.stderr)
        return EXIT_UNREACHABLE
    lock = Lock(entries)
    text = dump_lock(lock, args.stack)
    current = lock_path.read_text(encoding="utf-8") if lock_path.exists() else None
    changes = lock_changes(previous, lock) if current != text else []
    if args.check:
        return _check_result(lock_path, args.stack, current, text, changes)
    if current != text:
        write_atomically(lock_path, text)
    _warn_platforms(spec, lock, lock_path, args.stack)
    print(f"{lock_path}: {'written' if current != text else 'up to date'}, {len(entries)} image(s)" + "".join(f"\n  {c}" for c in changes))
    return EXIT_OK


def _check_result(lock_path: Path, stack: str, current: Optional[str], text: str, changes: list[str]) -> int:
    if current == text:
        print(f"{lock_path}: up to date")
        return EXIT_OK
    why = changes or ["the file's text differs from what lock writes (edited by hand?)"]
    print(f"{lock_path}: stale" + ("" if current is not None else " (missing)") + "".join(f"\n  {c}" for c in why))
    print(f"run `python -m prepull lock --stack {stack}` and commit the result")
    return EXIT_PROBLEMS


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """The ``lock`` subcommand's arguments."""
    p = sub.add_parser(
        "lock", help="resolve every stack image to its digest (per platform, with sizes) into stacks/prepull.<stack>.lock.yaml"
    )
    p.add_argument(
        "--stack", required=True, help="stack name: reads <stacks-dir>/Pulumi.<stack>.yaml, writes <stacks-dir>/prepull.<stack>.lock.yaml"
    )
    p.add_argument("--stacks-dir", help="directory of the stack files (default: ./stacks, else the checkout's stacks/)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if the lock file is stale (CI)")
    p.add_argument(
        "--plain-http",
        action="append",
        metavar="HOST",
        help="talk plain HTTP to this registry (host or host:port; repeatable). Loopback registries always use HTTP",
    )
    p.add_argument(
        "--timeout", type=float, default=30.0, metavar="SECONDS", help="bound on each registry request, connecting and reading (default 30)"
    )
    p.set_defaults(func=lock_command)


__all__ = ["add_parser", "lock_command", "resolve_all", "stack_images"]

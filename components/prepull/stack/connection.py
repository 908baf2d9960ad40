"""The stack's connection settings, checked before anything registers: ``prepull:kubeconfig`` and ``prepull:kubeContext``.

pulumi-kubernetes reads a ``kubeconfig`` that names no file as the file's contents, and lets a
context the kubeconfig lacks through a preview; both fail only at ``up``, after the stack's
provider registered, with the provider's own words (for a path: a JSON parse error). So a path
must name a readable file, and a context must be one of the kubeconfig's, read where the provider
reads it: the given contents or file, else ``$KUBECONFIG``'s files, else ``~/.kube/config``.
Reads files; no Pulumi engine, no cluster.
"""

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

import yaml

from prepull.errors import PrePullInputError
from prepull.stack.pools import CONFIG, StackSpec

KUBECONFIG_FIELD = CONFIG.child("kubeconfig")
CONTEXT_FIELD = CONFIG.child("kubeContext")


def is_contents(kubeconfig: str) -> bool:
    """Whether a ``kubeconfig`` value is the document itself (as the provider tells), not a path."""
    return "\n" in kubeconfig or kubeconfig.lstrip().startswith(("{", "apiVersion"))


def _readable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.R_OK)


def _sources(kubeconfig: Optional[str], environ: Mapping[str, str]) -> tuple[str, list[Path]]:
    """(how to name them in a message, the kubeconfig files the provider would read)."""
    if kubeconfig is not None:
        return f"the kubeconfig {kubeconfig}", [Path(kubeconfig).expanduser()]
    if environ.get("KUBECONFIG"):
        paths = [Path(p).expanduser() for p in environ["KUBECONFIG"].split(os.pathsep) if p]
        return f"$KUBECONFIG ({environ['KUBECONFIG']})", [p for p in paths if _readable(p)]
    default = Path(environ.get("HOME", "~")).expanduser() / ".kube" / "config"
    return str(default), [default] if _readable(default) else []


def _contexts(documents: list[Any]) -> list[str]:
    names = {c.get("name") for d in documents if isinstance(d, Mapping) for c in d.get("contexts") or [] if isinstance(c, Mapping)}
    return sorted(n for n in names if isinstance(n, str))


def _documents(kubeconfig: Optional[str], environ: Mapping[str, str]) -> tuple[str, list[Any]]:
    if kubeconfig is not None and is_contents(kubeconfig):
        where, texts = "the kubeconfig given as contents", [kubeconfig]
    else:
        where, paths = _sources(kubeconfig, environ)
        texts = [p.read_text(encoding="utf-8", errors="replace") for p in paths]
    documents = []
    for text in texts:
        try:
            documents.append(yaml.safe_load(text))
        except yaml.YAMLError:
            documents.append(None)  # the provider reports a broken file in its own words
    return where, documents


def check_connection(spec: StackSpec, environ: Mapping[str, str] = os.environ) -> None:
    """A kubeconfig path names a readable file; a context is one of the kubeconfig's (when there is one to read)."""
    kubeconfig = spec.kubeconfig
    if kubeconfig is not None and not is_contents(kubeconfig) and not _readable(Path(kubeconfig).expanduser()):
        raise PrePullInputError(KUBECONFIG_FIELD, kubeconfig, "names no readable file: give the path of a kubeconfig file, or its contents")
    if spec.kube_context is None:
        return
    where, documents = _documents(kubeconfig, environ)
    if not documents:
        return  # no kubeconfig to read: the provider says so itself
    contexts = _contexts(documents)
    if spec.kube_context not in contexts:
        raise PrePullInputError(
            CONTEXT_FIELD, spec.kube_context, f"is not a context of {where}; its contexts: {', '.join(contexts) or 'none'}"
        )


__all__ = ["check_connection", "is_contents"]

"""The README's inputs table and the args docstrings stay in step with the code."""

import ast
import re
from pathlib import Path

import prepull.args as args_module
from prepull.args import DEFAULTS, ImagePrePullerArgs

ROOT = Path(__file__).resolve().parents[2]


def _readme_inputs() -> dict:
    rows = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        m = re.match(r"^\| `([a-z_]+)` \| (.*?) \| (.*) \|$", line)
        if m:
            rows[m.group(1)] = m.group(2)
    return rows


def _field_docstrings(cls_name: str) -> dict:
    tree = ast.parse(Path(args_module.__file__).read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls_name)
    docs, last = {}, None
    for node in cls.body:
        if isinstance(node, ast.AnnAssign):
            last = node.target.id
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and last:
            docs[last] = node.value.value
            last = None
    return docs


def test_every_input_is_in_the_readme_table():
    rows = _readme_inputs()
    assert set(ImagePrePullerArgs.__annotations__) <= set(rows), set(ImagePrePullerArgs.__annotations__) - set(rows)


def test_readme_defaults_match_the_code():
    rows = _readme_inputs()
    for key, value in DEFAULTS.items():
        if key not in rows or isinstance(value, dict):
            continue
        shown = value.value if hasattr(value, "value") else value
        shown = str(shown).lower() if isinstance(shown, bool) else str(shown)
        assert shown in rows[key], (key, rows[key])


def test_every_input_docstring_states_its_default():
    for cls in ("ImagePrePullerArgs", "Toleration", "StartupTaint", "CustomTimeouts", "ContainerResources"):
        docs = _field_docstrings(cls)
        annotated = getattr(args_module, cls).__annotations__
        assert set(docs) == set(annotated), (cls, set(annotated) - set(docs))
        for field, doc in docs.items():
            assert "Default" in doc or "Required" in doc, (cls, field)


def test_docstring_defaults_match_the_code():
    docs = _field_docstrings("ImagePrePullerArgs")
    for key, value in DEFAULTS.items():
        if key in docs and not isinstance(value, dict):
            shown = value.value if hasattr(value, "value") else value
            shown = str(shown).lower() if isinstance(shown, bool) else str(shown)
            assert f"Default: {shown}" in docs[key] or f"Default: `{shown}`" in docs[key], (key, docs[key])

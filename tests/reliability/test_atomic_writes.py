"""No code writes a file in place: every write goes through privfed.io (temporary file, rename).

A static check over privfed/, attacks/ and reports/, so a new ``path.write_text(...)`` or
``savefig("x.png")`` is caught before a killed process can leave half a file behind.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("privfed", "attacks", "reports")
#: (file, line text) writes that are allowed: privfed.io itself, and an append-only log stream
ALLOWED = {("privfed/io.py", "os.fdopen"), ("privfed/flower/launch.py", 'open(self.log_path, "ab")')}


def _mode(call: ast.Call) -> str:
    args = [*call.args[1:2], *(k.value for k in call.keywords if k.arg == "mode")]
    return args[0].value if args and isinstance(args[0], ast.Constant) and isinstance(args[0].value, str) else "r"


def violations(path: Path) -> list[str]:
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
        bad = (
            name in ("write_text", "write_bytes")
            or (name in ("open", "fdopen") and any(c in _mode(node) for c in "wax+"))
            or (owner in ("torch", "np", "numpy") and name.startswith("save"))
            # matplotlib/PIL into a file name rather than an in-memory buffer (RunDir.save is atomic)
            or (name == "savefig" and node.args and not isinstance(node.args[0], ast.Name))
            or (name == "save" and node.args and (isinstance(node.args[0], (ast.Constant, ast.JoinedStr))
                                                 or (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Call)
                                                     and not isinstance(node.args[0], ast.Name))))
        )
        line = lines[node.lineno - 1]
        relative = path.relative_to(ROOT).as_posix()
        if bad and not any(relative == f and text in line for f, text in ALLOWED):
            found.append(f"{relative}:{node.lineno}: {line.strip()}")
    return found


def test_every_write_is_atomic():
    found = [v for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py")) for v in violations(path)]
    assert not found, "write through privfed.io (atomic_write_bytes/text, write_json, save_tensors):\n" + "\n".join(found)


def test_the_check_sees_in_place_writes(tmp_path, monkeypatch):
    sample = ROOT / "privfed" / "_atomic_check_sample.py"
    monkeypatch.setattr(Path, "read_text", lambda self, encoding=None: (
        'from pathlib import Path\nPath("a").write_text("x")\nopen("b", "w")\nfig.savefig("c.png")\n'
        'torch.save(m, "d.pt")\nopen("e")\nfig.savefig(buffer, format="png")\nImage.fromarray(a).save(out / "f.png")\n'
        'run.save(folder / "g.safetensors", t)\n'))
    assert [v.split(":")[1] for v in violations(sample)] == ["2", "3", "4", "5", "8"]

"""Structure: the layers import downwards only, library code never prints or exits,
only the store's mlmd engine imports ml_metadata, only the CLI imports click, every command has help."""
from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path
from typing import Dict, List, Set

import pytest

from tests.conftest import cli_runner

import cmfrun

PKG = Path(cmfrun.__file__).parent

#: Modules of each layer may import only from the layers listed (plus their own layer).
LAYER_OF = {
    "cli": "cli",
    "commands": "commands",
    "ingest": "ingest",
    "api": "api",
    "query": "read",
    "lineage": "read",
    "integrations": "integrations",
    "ui": "ui",
    "server": "server",
}
ALLOWED: Dict[str, Set[str]] = {
    "cli": {"cli", "commands", "ingest", "api", "read", "integrations", "core", "ui", "server"},
    "commands": {"commands", "ingest", "read", "integrations", "core"},
    "integrations": {"integrations", "read", "core"},
    "ui": {"ui", "commands", "read", "core"},
    # The server is another front door: onto the commands, the sync router and the UI.
    "server": {"server", "commands", "read", "core", "sync", "ui"},
    "ingest": {"ingest", "core"},
    "api": {"integrations", "core"},  # Cmf(graph=True) mirrors through integrations.graph
    "read": {"read", "core"},
    "core": {"core"},
}

#: Deliberate upward imports, each lazy and in an entry point of its own: the background
#: merger (journal.main, a detached process) sends OpenLineage events when asked to.
UPWARD_EXCEPTIONS = {
    ("journal.py", "cmfrun.integrations"),
    ("journal.py", "cmfrun.integrations.openlineage"),
    ("journal.py", "cmfrun.integrations.graph"),
}


def _modules() -> List[Path]:
    return sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)


def _layer(path: Path) -> str:
    rel = path.relative_to(PKG).parts
    head = rel[0][:-3] if rel[0].endswith(".py") else rel[0]
    return LAYER_OF.get(head, "core")


def _imports(tree: ast.AST) -> List[str]:
    names: List[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names += [f"{node.module}.{a.name}" for a in node.names]
    return names


def _target_layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) < 2 or parts[0] != "cmfrun":
        return ""
    return LAYER_OF.get(parts[1], "core")


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_imports_point_down(path: Path) -> None:
    if path.name == "__init__.py" and path.parent == PKG:
        return  # the package root re-exports lazily from every layer
    if path.name == "__main__.py":
        return
    layer = _layer(path)
    tree = ast.parse(path.read_text())
    rel = path.relative_to(PKG).as_posix()
    bad = [
        m
        for m in _imports(tree)
        if _target_layer(m) and _target_layer(m) not in ALLOWED[layer] and (rel, m) not in UPWARD_EXCEPTIONS
    ]
    assert not bad, f"{path.relative_to(PKG)} ({layer}) imports upwards: {bad}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_only_owners_import_heavy_libraries(path: Path) -> None:
    rel = path.relative_to(PKG).as_posix()
    mods = _imports(ast.parse(path.read_text()))
    if any(m.split(".")[0] == "ml_metadata" for m in mods):
        assert rel == "store/mlmd.py", f"{rel} imports ml_metadata; only store/mlmd.py may"
    if any(m.split(".")[0] == "click" for m in mods):
        assert rel.startswith("cli/"), f"{rel} imports click; only cmfrun/cli may"
    if any(m.split(".")[0] == "git" for m in mods):
        pytest.fail(f"{rel} imports GitPython; git goes through gitinfo.py")


@pytest.mark.parametrize(
    "path", [p for p in _modules() if _layer(p) != "cli" and p.name != "__main__.py"], ids=lambda p: str(p.relative_to(PKG))
)
def test_library_never_prints_or_exits(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id in {"print", "exit", "quit"}:
                # A module's own `if __name__ == "__main__"` entry may print; library functions may not.
                pytest.fail(f"{path.relative_to(PKG)}:{node.lineno} calls {f.id}()")
            if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
                if (f.value.id, f.attr) in {("sys", "exit"), ("os", "chdir"), ("os", "_exit")}:
                    pytest.fail(f"{path.relative_to(PKG)}:{node.lineno} calls {f.value.id}.{f.attr}()")


def test_public_names_resolve() -> None:
    for name in cmfrun.__all__:
        assert getattr(cmfrun, name) is not None, name


def _all_commands(group, prefix=()):  # type: ignore[no-untyped-def]
    import click

    for name, cmd in sorted(group.commands.items()):
        yield prefix + (name,)
        if isinstance(cmd, click.Group):
            yield from _all_commands(cmd, prefix + (name,))


def test_every_command_has_help() -> None:
    from cmfrun.cli import cmf
    from cmfrun.cli.run import run_command

    runner = cli_runner()
    commands = list(_all_commands(cmf))
    assert commands, "the cmf group has no commands"
    for path in commands:
        result = runner.invoke(cmf, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.output
        cmd = cmf
        for part in path:
            cmd = cmd.commands[part]  # type: ignore[attr-defined]
        assert (cmd.help or "").strip(), f"cmf {' '.join(path)} has no help text"
    result = runner.invoke(run_command, ["--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


def test_each_module_has_all() -> None:
    missing = []
    for path in _modules():
        rel = path.relative_to(PKG)
        if rel.parts[0] == "cli" or path.name in {"__main__.py"}:
            continue
        if path.name == "__init__.py" and path.read_text().strip() == "":
            continue
        if rel.as_posix() == "store/mlmd.py" and importlib.util.find_spec("ml_metadata") is None:
            continue  # the ml-metadata engine cannot load where ml-metadata does not install (3.12+)
        mod = importlib.import_module("cmfrun." + ".".join(rel.with_suffix("").parts).replace(".__init__", ""))
        if not hasattr(mod, "__all__"):
            missing.append(str(rel))
            continue
        for name in mod.__all__:
            assert hasattr(mod, name), f"{rel}: __all__ names missing {name}"
    assert not missing, f"modules without __all__: {missing}"

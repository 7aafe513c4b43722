#!/usr/bin/env python3
"""Fails when a workspace crate declares a dependency its sources never mention.

A cheap stand-in for `cargo machete` (no compile on a fresh CI machine): for every workspace
package (the root `traj-suite` and `crates/*`), each name under `[dependencies]`,
`[dev-dependencies]` and `[build-dependencies]` must appear in the crate's `src/`, `tests/`,
`benches/`, `examples/` or `build.rs` as `name::`, `use name` or `extern crate name` (dashes
become underscores; a `package = "..."` rename is looked up under its key, which is the name the
code uses). A dependency needed only for its features or its side effects has no such mention:
list it in ALLOWED with the reason.

Usage: python3 .ci/unused-deps.py   (from anywhere; exit status 1 when something is unused)
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (package, dependency) -> why the dependency stays although no source names it.
ALLOWED: dict[tuple[str, str], str] = {}

SOURCE_DIRS = ("src", "tests", "benches", "examples")
SECTIONS = ("dependencies", "dev-dependencies", "build-dependencies")


def packages() -> list[Path]:
    """Directories of the workspace packages (those with a [package] table)."""
    root = tomllib.loads((ROOT / "Cargo.toml").read_text())
    dirs = [ROOT] if "package" in root else []
    for pattern in root.get("workspace", {}).get("members", []):
        dirs.extend(sorted(p for p in ROOT.glob(pattern) if (p / "Cargo.toml").is_file()))
    return dirs


def nested_package(pkg: Path, f: Path) -> bool:
    """Whether `f` belongs to another package inside `pkg` (such as `tests/fuzz`)."""
    return any((d / "Cargo.toml").is_file() for d in f.parents if d != pkg and pkg in d.parents)


def sources(pkg: Path) -> str:
    """All Rust source of a package, without that of packages nested in it."""
    files: list[Path] = []
    for d in SOURCE_DIRS:
        files.extend(f for f in (pkg / d).rglob("*.rs") if not nested_package(pkg, f))
    if (pkg / "build.rs").is_file():
        files.append(pkg / "build.rs")
    return "\n".join(f.read_text(errors="replace") for f in files)


def mentioned(crate: str, text: str) -> bool:
    name = re.escape(crate)
    pattern = rf"(\b{name}::|\buse\s+{name}\b|\bextern\s+crate\s+{name}\b)"
    return re.search(pattern, text) is not None


def main() -> int:
    problems: list[str] = []
    used_allowances: set[tuple[str, str]] = set()
    for pkg in packages():
        manifest = tomllib.loads((pkg / "Cargo.toml").read_text())
        name = manifest["package"]["name"]
        text = sources(pkg)
        for section in SECTIONS:
            for dep in manifest.get(section, {}):
                if (name, dep) in ALLOWED:
                    used_allowances.add((name, dep))
                    continue
                if not mentioned(dep.replace("-", "_"), text):
                    rel = (pkg / "Cargo.toml").relative_to(ROOT)
                    problems.append(f"{rel}: [{section}] {dep} is never used by {name}'s sources")
    for stale in sorted(set(ALLOWED) - used_allowances):
        problems.append(f"unused-deps.py: ALLOWED entry {stale} matches no declared dependency")
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(
            "unused-deps: remove the dependency, or add it to ALLOWED in .ci/unused-deps.py "
            "with the reason it is needed",
            file=sys.stderr,
        )
        return 1
    print(f"unused-deps: every dependency of {len(packages())} packages is used")
    return 0


if __name__ == "__main__":
    sys.exit(main())

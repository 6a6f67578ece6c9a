#!/usr/bin/env python3
"""tools/internal_names.py — the internal marker (docs/architecture.md §1): a function (or extern
table) that files of one module share but that is not public is declared in the module's private
header (*_int.h) and named wv__<module>_<name>, as libuv names its own uv__ functions; a public
header declares none.

  internal_names.py check SRC   lists the declarations that break the rule; exit 1 if any
  internal_names.py fix SRC     renames wv_<x> to wv__<x> for every name a *_int.h declares,
                                in every C file, test and doc of the tree (idempotent: re-run it
                                after merging a branch written against the old names)
"""
import pathlib
import re
import sys

FOLDERS = ("core", "storage", "http", "registry", "scan", "build")
DECL = re.compile(r"^(?:static inline )?[A-Za-z_][\w \*]*?\b(wv_{1,2}[a-z0-9_]+)\s*\(", re.M)
EXTERN = re.compile(r"^extern [\w \*]*?\b(wv_{1,2}[a-z0-9_]+)\s*[\[;]", re.M)


def strip_comments(text):
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


def headers(src):
    for folder in FOLDERS:
        yield from sorted((src / folder).rglob("*.h"))


def declared(path):
    text = strip_comments(path.read_text())
    return [m.group(1) for r in (DECL, EXTERN) for m in r.finditer(text)]


def check(src):
    bad = []
    for h in headers(src):
        private = h.name.endswith("_int.h")
        for name in declared(h):
            if private and not name.startswith("wv__"):
                bad.append(f"{h.relative_to(src)}: {name} is internal: name it wv__{name[3:]}")
            if not private and name.startswith("wv__"):
                bad.append(f"{h.relative_to(src)}: {name} is public: no wv__ marker")
    for line in bad:
        print(line)
    return 1 if bad else 0


def fix(src):
    names = {n for h in headers(src) if h.name.endswith("_int.h") for n in declared(h)}
    names = sorted(n for n in names if not n.startswith("wv__"))
    if not names:
        return 0
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b")
    files = [p for folder in FOLDERS + ("tests", "bench", "docs") if (src / folder).exists()
             for p in (src / folder).rglob("*") if p.suffix in (".c", ".h", ".inc", ".md")]
    for p in files:
        text = p.read_text()
        new = pattern.sub(lambda m: "wv__" + m.group(1)[3:], text)
        if new != text:
            p.write_text(new)
            print(f"renamed in {p.relative_to(src)}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("check", "fix"):
        sys.exit(__doc__)
    root = pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else pathlib.Path(__file__).parent.parent)
    sys.exit(check(root.resolve()) if sys.argv[1] == "check" else fix(root.resolve()))

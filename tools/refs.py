#!/usr/bin/env python3
"""tools/refs.py — section references (§) in the tree: check them, or move old ones to the docs.

The code and docs cite two documents of this repository by section:
  contract §N.N      docs/wave-contract.md   (also "Contract §", "wave-contract.md §")
  architecture §N.N  docs/architecture.md    (also "Architecture §", "architecture.md §")
A bare "§N.N" belongs to the nearest qualified reference at most two lines before it (as in
"contract §3.1–§3.3" or "architecture §2 "Parking", §3"); inside the two documents a bare
reference is to the document itself.

  refs.py check [ROOT]  every reference names a section that exists; no reference to a document
                        outside the repository, no unqualified one. Exit 1 with one line per problem.
  refs.py fix [ROOT]    rewrites references to the documents this project once cited from outside
                        ("spec §…", the study of Wave's API; "design §…", the design notes) into
                        contract/architecture references with the table below. Idempotent: only
                        old-style references change, so it can be re-run after merging a branch
                        written against the old numbering. A bare reference with no qualified one
                        before it is taken to be an old spec reference and gets "contract ".
"""
import os
import re
import subprocess
import sys

CONTRACT = "docs/wave-contract.md"
ARCHITECTURE = "docs/architecture.md"

# Old spec section -> contract section (docs/wave-contract.md).
SPEC = {
    "0": "1", "0.1": "1.1", "0.2": "1.2", "0.3": "1.3",
    "1": "2", "1.1": "3.1", "1.2": "3.2", "1.3": "3.3", "1.4": "3.4", "1.5": "3.5", "1.6": "3.6",
    "1.7": "6.5", "1.8": "8.2", "1.9": "7.2", "1.10": "5.8", "1.11": "12", "1.12": "12",
    "1.13": "2.1", "1.14": "12", "1.15": "2.2",
    "2": "4", "2.1": "4.1", "2.2": "4.2", "2.3": "4.3", "2.4": "4.4", "2.5": "4.5", "2.6": "4.6",
    "2.7": "4.7",
    "3": "5", "3.1": "5.1", "3.2": "5.2", "3.3": "5.3", "3.4": "5.4", "3.5": "5.5", "3.6": "5.6",
    "3.7": "5.7", "3.8": "12",
    "4": "6", "4.1": "6.1", "4.2": "6.2", "4.3": "6.3", "4.4": "6.4", "4.5": "7.1", "4.6": "8.1",
    "4.7": "6.6", "4.8": "3.7",
    "5": "9", "5.1": "9", "5.2": "9", "5.3": "9.1", "5.4": "9", "5.5": "9", "5.6": "9", "5.7": "9",
    "6": "10", "6.1": "10.1", "6.2": "10.2", "6.3": "10.3",
    "7": "11",
}
# Old design section (optionally with the title cited after it) -> architecture section.
DESIGN = {
    "1": "1", "2": "2", "3": "3", "4": "4", "5": "5.2", "6": "5.3", "7": "6", "8": "7",
    ("2", "Parking"): "2.3", ("2", "Job engine"): "2.4", ("2", "Writer"): "2.5",
    ("3", "Embedded build registry"): "3.4", ("6", "Builds"): "5.3",
}
OLD_WORDS = {"spec": "contract", "Spec": "Contract", "design": "architecture",
             "Design": "Architecture", "design.md": "architecture.md"}
NEW_WORDS = {"contract": CONTRACT, "Contract": CONTRACT, "wave-contract.md": CONTRACT,
             "architecture": ARCHITECTURE, "Architecture": ARCHITECTURE,
             "architecture.md": ARCHITECTURE}
WINDOW_LINES = 2

WORD = r"(?<![\w/.-])(?P<word>design\.md|wave-contract\.md|architecture\.md|spec|Spec|design|Design|contract|Contract|architecture|Architecture)(?P<gap>[ \t]*\n?[ \t]*(?:\*[ \t]+|#[ \t]+|//[ \t]*)?)"
REF = re.compile(r"(?:" + WORD + r")?§(?P<num>\d+(?:\.\d+)*)(?P<title>\s+\"[^\"\n]+\")?")
TEXT_EXT = (".c", ".h", ".md", ".sh", ".py", ".inc", ".yml", ".yaml", ".txt", ".in", ".cmake")


def files(root):
    """The tree's text files: what git tracks or would track, else every file but out*/."""
    git = subprocess.run(["git", "-C", root, "ls-files", "-z", "--cached", "--others",
                          "--exclude-standard"], capture_output=True)
    if git.returncode == 0:
        names = git.stdout.decode().split("\0")
    else:
        names = [os.path.relpath(os.path.join(d, f), root) for d, dirs, fs in os.walk(root)
                 for f in fs if not os.path.relpath(d, root).startswith(("out", ".git"))]
    for name in names:
        base = os.path.basename(name)
        if name and (name.endswith(TEXT_EXT) or base in ("Makefile", "CMakeLists.txt")) \
                and os.path.isfile(os.path.join(root, name)):
            yield name


def refs(text, own_doc):
    """Yields (match, doc, old) per reference: doc is 'spec', 'design', CONTRACT or ARCHITECTURE;
    old says whether the governing reference was an old-style one (or there was none)."""
    gov = None  # (doc, line of the governing reference)
    for m in REF.finditer(text):
        line = text.count("\n", 0, m.start("num"))
        word = m.group("word")
        if word:
            doc = NEW_WORDS.get(word) or ("spec" if word.lower() == "spec" else "design")
            gov = (doc, line)
        elif gov and line - gov[1] <= WINDOW_LINES:
            doc = gov[0]
            gov = (doc, line)
        elif own_doc:
            doc = own_doc
        else:
            doc = "spec"
            gov = (doc, line)
        yield m, doc


def sections(root, doc):
    nums = set()
    for line in open(os.path.join(root, doc), encoding="utf-8"):
        m = re.match(r"#{2,4}\s+(\d+(?:\.\d+)*)\.?\s", line)
        if m:
            nums.add(m.group(1))
    return nums


def lookup(table, num, title):
    parts = num.split(".")
    while parts:
        key = ".".join(parts)
        if title and (key, title) in table:
            return table[(key, title)]
        if key in table:
            return table[key]
        parts.pop()
    return None


def own(name):
    return name if name in (CONTRACT, ARCHITECTURE) else None


def fix(root):
    changed = 0
    for name in files(root):
        if own(name) or name.startswith("tools/"):
            continue
        path = os.path.join(root, name)
        text = open(path, encoding="utf-8", errors="surrogateescape").read()
        if "§" not in text:
            continue
        out, last = [], 0
        for m, doc in refs(text, None):
            if doc not in ("spec", "design"):
                continue
            title = m.group("title").strip()[1:-1] if m.group("title") else None
            new = lookup(SPEC if doc == "spec" else DESIGN, m.group("num"), title)
            if new is None:
                print(f"{name}:{text.count(chr(10), 0, m.start()) + 1}: no mapping for "
                      f"{doc} §{m.group('num')}", file=sys.stderr)
                continue
            word = m.group("word")
            if word:
                head = OLD_WORDS[word] + m.group("gap")
            else:
                # Bare: keep it bare under a qualified reference, else qualify it.
                head = "" if _governed(text, m) else "contract "
            out.append(text[last:m.start()])
            out.append(head + "§" + new + (m.group("title") or ""))
            last = m.end()
        if out:
            out.append(text[last:])
            new_text = "".join(out)
            if new_text != text:
                open(path, "w", encoding="utf-8", errors="surrogateescape").write(new_text)
                changed += 1
                print(f"rewrote {name}")
    print(f"{changed} files rewritten")
    return 0


def _governed(text, m):
    """Whether the bare reference m has a reference (qualified or bare) at most WINDOW_LINES
    before it that it continues, as refs() decided."""
    line = text.count("\n", 0, m.start("num"))
    prev = None
    for p in REF.finditer(text, 0, m.start()):
        prev = p
    return prev is not None and line - text.count("\n", 0, prev.start("num")) <= WINDOW_LINES


def check(root):
    have = {CONTRACT: sections(root, CONTRACT), ARCHITECTURE: sections(root, ARCHITECTURE)}
    bad = 0
    for name in files(root):
        path = os.path.join(root, name)
        text = open(path, encoding="utf-8", errors="surrogateescape").read()
        if "§" not in text or name.startswith("tools/"):
            continue
        for m, doc in refs(text, own(name)):
            line = text.count("\n", 0, m.start()) + 1
            num = m.group("num")
            if doc in ("spec", "design"):
                print(f"{name}:{line}: §{num} cites a document outside the repository or none "
                      f"(write 'contract §N' or 'architecture §N'; tools/fix-refs.sh moves old ones)")
                bad += 1
            elif num not in have[doc]:
                print(f"{name}:{line}: §{num} does not exist in {doc}")
                bad += 1
    for doc in (CONTRACT, ARCHITECTURE):
        if not have[doc]:
            print(f"{doc}: no numbered sections found")
            bad += 1
    if bad:
        print(f"{bad} bad section references")
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("check", "fix"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    root = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "..")
    sys.exit(check(root) if sys.argv[1] == "check" else fix(root))

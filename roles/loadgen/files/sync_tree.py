"""Mirror the load generator's source tree into a folder, in one step.

Usage: sync_tree.py SRC DEST [--check]

Copies files whose content differs, removes files DEST has and SRC does
not, and skips what a developer's checkout accumulates (__pycache__, *.pyc,
*.egg-info, build/, tests/). Prints JSON {"changed": bool, "files": [...]}
so the calling task can report an honest `changed`. With --check it only
reports what it would do. One process instead of a copy task per file keeps
`make demo` fast.
"""

import filecmp
import json
import os
import re
import shutil
import sys

SKIP = re.compile(r"(^|/)(__pycache__|build|tests|[^/]*\.egg-info)(/|$)|\.pyc$")


def wanted(root):
    out = set()
    for base, dirs, files in os.walk(root):
        rel_base = os.path.relpath(base, root)
        dirs[:] = [d for d in dirs if not SKIP.search(os.path.normpath(os.path.join(rel_base, d)))]
        for name in files:
            rel = os.path.normpath(os.path.join(rel_base, name))
            if not SKIP.search(rel):
                out.add(rel)
    return out


def main(argv):
    check = "--check" in argv
    src, dest = [a for a in argv if a not in ("--check", "")]
    changed = []
    source = wanted(src)
    for rel in sorted(source):
        target = os.path.join(dest, rel)
        if os.path.isfile(target) and filecmp.cmp(os.path.join(src, rel), target, shallow=False):
            continue
        changed.append(rel)
        if not check:
            os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
            shutil.copyfile(os.path.join(src, rel), target)
            os.chmod(target, 0o644)
    if os.path.isdir(dest):
        for rel in sorted(wanted(dest) - source):
            changed.append(rel + " (removed)")
            if not check:
                os.remove(os.path.join(dest, rel))
    print(json.dumps({"changed": bool(changed), "files": changed}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

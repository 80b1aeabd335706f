"""Summarise a finished `nox -s mutation` run: killed/total per module, and each survivor
with its diff, message-text mutants apart (a person reads the rest).

    .nox/mutation/bin/python tests/mutation/classify.py .nox/mutation/bin/mutmut

A mutant that changes only the inside of string literals holding a space (a message, a fix, a
warning: prose) is "message": the refusal still happens, with the same exit code and file.
"""

from __future__ import annotations

import collections
import re
import subprocess
import sys

_STRING = re.compile(r"""[rbuf]*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')""", re.I)


def _skeleton(line: str) -> tuple[str, list[str]]:
    """The line with string literals blanked, and the literals."""
    literals = [m.group(0) for m in _STRING.finditer(line)]
    return _STRING.sub('""', line), literals


def is_message_only(diff: str) -> bool:
    old = [ln[1:] for ln in diff.splitlines() if ln.startswith("-") and not ln.startswith("---")]
    new = [ln[1:] for ln in diff.splitlines() if ln.startswith("+") and not ln.startswith("+++")]
    if len(old) != 1 or len(new) != 1:
        return False
    (a, la), (b, lb) = _skeleton(old[0]), _skeleton(new[0])
    if a != b or len(la) != len(lb):
        return False
    changed = [(x, y) for x, y in zip(la, lb, strict=True) if x != y]
    # f-string placeholders are code: a change inside {...} is not a message change
    return bool(changed) and all(" " in x and re.findall(r"\{[^}]*\}", x) == re.findall(
        r"\{[^}]*\}", y) for x, y in changed)


def main() -> int:
    mutmut = sys.argv[1] if len(sys.argv) > 1 else "mutmut"
    listing = subprocess.run([mutmut, "results", "--all", "true"], capture_output=True,
                             text=True, check=False).stdout
    status: dict[str, str] = {}
    for line in listing.splitlines():
        name, _, state = line.strip().rpartition(": ")
        if name.startswith("packager."):
            status[name] = state
    per_module: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for name, state in status.items():
        per_module[name.split(".x")[0]][state] += 1
    print("| module | killed | timeout | survived | no tests | total |")
    print("|---|---|---|---|---|---|")
    for module, c in sorted(per_module.items()):
        print(f"| {module} | {c['killed']} | {c['timeout']} | {c['survived']} | "
              f"{c['no tests']} | {sum(c.values())} |")
    total = sum(per_module.values(), collections.Counter())
    print(f"| all | {total['killed']} | {total['timeout']} | {total['survived']} | "
          f"{total['no tests']} | {sum(total.values())} |\n")
    for name in (n for n, s in status.items() if s == "survived"):
        diff = subprocess.run([mutmut, "show", name], capture_output=True, text=True,
                              check=False).stdout
        kind = "message" if is_message_only(diff) else "other"
        body = "\n".join(ln for ln in diff.splitlines() if ln[:1] in "+-" and ln[:3] not in
                         ("---", "+++"))
        print(f"### {name} ({kind})\n```diff\n{body}\n```")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

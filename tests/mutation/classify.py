"""Sort mutmut's surviving mutants into message-text mutants and the rest (read by a person).

    python tests/mutation/classify.py [mutmut] > survivors.txt

A mutant that changes only the inside of a string literal that holds a space (a message, a fix,
a warning: prose) is "message": the refusal still happens, with the same exit code and the
same file; only the words differ. Everything else is listed with its diff for review.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tokenize


def _tokens(line: str) -> list[tuple[int, str]] | None:
    try:
        return [(t.type, t.string) for t in tokenize.generate_tokens(io.StringIO(line.strip()).readline)
                if t.type not in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER, tokenize.COMMENT)]
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return None


def _fstring_parts(tokens: list[tuple[int, str]]) -> list[tuple[int, str]]:
    return tokens


def is_message_only(diff: str) -> bool:
    old = [ln[1:] for ln in diff.splitlines() if ln.startswith("-") and not ln.startswith("---")]
    new = [ln[1:] for ln in diff.splitlines() if ln.startswith("+") and not ln.startswith("+++")]
    if len(old) != 1 or len(new) != 1:
        return False
    a, b = _tokens(old[0]), _tokens(new[0])
    if a is None or b is None or len(a) != len(b):
        return False
    changed = [(x, y) for x, y in zip(a, b, strict=True) if x != y]
    return bool(changed) and all(
        x[0] == y[0] == tokenize.STRING and " " in x[1] for x, y in changed)


def main() -> int:
    mutmut = sys.argv[1] if len(sys.argv) > 1 else "mutmut"
    listing = subprocess.run([mutmut, "results"], capture_output=True, text=True).stdout
    survivors = [ln.split(":")[0].strip() for ln in listing.splitlines() if ln.endswith(": survived")]
    messages, others = [], []
    for name in survivors:
        diff = subprocess.run([mutmut, "show", name], capture_output=True, text=True).stdout
        (messages if is_message_only(diff) else others).append((name, diff))
    print(f"# {len(survivors)} survived: {len(messages)} message text only, {len(others)} other")
    for name, _ in messages:
        print(f"message  {name}")
    for name, diff in others:
        print(f"\n## other  {name}\n{diff}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

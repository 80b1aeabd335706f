"""Files in the input that should not end up in an image: secrets and other dot-files.

Everything in a model directory is copied into the image, and an image is pushed to a registry
that more people can pull than can read the machine it was built on. A `.env`, a private key or
a cloud credential file copied along by accident is a leak that outlives the model. So:

- known secret files (by name, by directory, by suffix) are refused, naming the file; a model
  that really ships such a file says so with `--allow-secret-files`;
- other dot-files (`.cache/`, `.vscode/`, ...) are copied, with one warning naming them, since
  Triton never reads them and they are usually there by accident;
- `.git/` and the other tool folders of inputs.IGNORED_NAMES are skipped by the reader already.

The patterns match names, not contents: a secret under an innocent name is not found, and a
harmless `server.pem` (a public certificate) is refused until the flag is given.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from packager.backends import EntryKind
from packager.errors import InputError, bounded
from packager.inputs import Entry

ALLOW_FLAG = "--allow-secret-files"
# Directories whose files are credentials by construction.
SECRET_DIRS = frozenset({".ssh", ".aws", ".gnupg", ".docker", ".kube", ".azure", ".gcloud",
                         ".config/gcloud"})
# File names that hold credentials wherever they are.
SECRET_NAMES = frozenset({".env", ".netrc", ".pypirc", ".npmrc", ".git-credentials",
                          ".dockercfg", ".htpasswd", "id_rsa", "id_dsa", "id_ecdsa",
                          "id_ed25519", "credentials.json", "service-account.json"})
# `.env.local`, `.env.production`: dotenv variants; private keys and key stores by suffix.
_SECRET_NAME_RE = re.compile(r"\.env\.[A-Za-z0-9_.-]+|.+\.(?:pem|key|p12|pfx|jks|keystore)")
# Dot-files that are no secret and no accident: git's placeholder for an empty directory.
HARMLESS_DOTFILES = frozenset({".gitkeep", ".gitignore", ".keep"})
WARN_LIMIT = 5  # names shown in the dot-file warning


def secret_reason(path: str) -> str | None:
    """Why `path` (POSIX, relative to the input) looks like a secret, or None."""
    parts = path.split("/")
    for i in range(len(parts) - 1):
        if parts[i] in SECRET_DIRS or "/".join(parts[i:i + 2]) in SECRET_DIRS:
            return f"it is inside a {parts[i]}/ directory, which holds credentials"
    name = parts[-1]
    if name in SECRET_NAMES:
        return "its name is that of a credentials file"
    if _SECRET_NAME_RE.fullmatch(name):
        return "its name is that of a private key or a dotenv file"
    return None


def check_input_files(entries: Sequence[Entry], label: str, *,
                      allow_secrets: bool = False) -> tuple[str, ...]:
    """Refuse known secret files (unless allowed); warnings for the other dot-files."""
    files = [e.path for e in entries if e.kind is EntryKind.FILE]
    if not allow_secrets:
        for path in files:
            reason = secret_reason(path)
            if reason is not None:
                raise InputError(
                    f"{bounded(path)} looks like a secret ({reason}); everything in the input "
                    "is copied into the image, and an image is readable by whoever can pull it",
                    file=label,
                    fix=f"remove it from the model directory, or pass {ALLOW_FLAG} if the model "
                    "really needs it in the image")
    # Past this point every secret was allowed: they are named again, with the dot-files.
    listed = [p for p in files
              if (any(part.startswith(".") for part in p.split("/"))
                  and p.rsplit("/", 1)[-1] not in HARMLESS_DOTFILES)
              or secret_reason(p) is not None]
    if not listed:
        return ()
    shown = ", ".join(bounded(p, quote=False) for p in listed[:WARN_LIMIT])
    more = f" and {len(listed) - WARN_LIMIT} more" if len(listed) > WARN_LIMIT else ""
    return (f"{label}: hidden or secret-looking file(s) {shown}{more} are copied into the "
            "image; Triton does not read them -- remove them if they are there by accident",)

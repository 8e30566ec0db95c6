"""Print pyproject.toml's base dependencies and those of the extras named as arguments."""

import re
import sys
import tomllib

# Run in an image before the code is copied, so the dependency layer is rebuilt only when
# pyproject.toml changes, not on every edit of the code or the README.
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
extras = project.get("optional-dependencies", {})
unknown = [name for name in sys.argv[1:] if name not in extras]
if unknown:
    sys.exit(f"pyproject.toml has no extra {', '.join(unknown)} (extras: {', '.join(extras)})")
# An extra may name others of this project ("scones[cli]"): expanded here, never fetched.
SELF = re.compile(rf"^{re.escape(project['name'])}\[([^\]]+)\]$")


def requirements(extra: str) -> list[str]:
    found = []
    for requirement in extras[extra]:
        named = SELF.match(requirement.replace(" ", ""))
        found += (
            [r for e in named.group(1).split(",") for r in requirements(e)]
            if named
            else [requirement]
        )
    return found


for requirement in dict.fromkeys(
    project["dependencies"] + [r for e in sys.argv[1:] for r in requirements(e)]
):
    print(requirement)

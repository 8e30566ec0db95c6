"""Print pyproject.toml's base dependencies and those of the extras named as arguments."""

import sys
import tomllib

# Run in an image before the code is copied, so the dependency layer is rebuilt only when
# pyproject.toml changes, not on every edit of the code or the README.
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
extras = project.get("optional-dependencies", {})
unknown = [name for name in sys.argv[1:] if name not in extras]
if unknown:
    sys.exit(f"pyproject.toml has no extra {', '.join(unknown)} (extras: {', '.join(extras)})")
for requirement in project["dependencies"] + [r for e in sys.argv[1:] for r in extras[e]]:
    print(requirement)

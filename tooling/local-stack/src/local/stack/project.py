"""Where the project is: the folder of its template.yaml (with functions/, layers/ and events/ beside it).

The local stack is installed as a package, so it never looks at its own location: the template is the one
given (``--template``), or the first template.yaml found in the current directory or above it, as git finds
its repository.
"""

from __future__ import annotations

from pathlib import Path

TEMPLATE_NAME = "template.yaml"


class ProjectNotFound(FileNotFoundError):
    """No template.yaml in the current directory or any directory above it."""


def find_template(template: Path | str | None = None, start: Path | str | None = None) -> Path:
    """The template to run: `template` if given, else the nearest template.yaml from `start` (the current
    directory) upwards."""
    if template is not None:
        path = Path(template).expanduser().resolve()
        if not path.is_file():
            raise ProjectNotFound(f"no template at {path}")
        return path
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / TEMPLATE_NAME
        if candidate.is_file():
            return candidate
    raise ProjectNotFound(f"no {TEMPLATE_NAME} in {here} or above it: run from the project, or give --template")


def project_root(template: Path | str | None = None, start: Path | str | None = None) -> Path:
    """The project's folder: the template's."""
    return find_template(template, start).parent

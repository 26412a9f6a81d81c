"""Which versions of a dependency a `_compat` module was checked on."""

from importlib import metadata

__all__ = ["installed_version", "unchecked"]


def installed_version(distribution: str) -> str | None:
    """The installed version of a pip distribution, or None."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def unchecked(
    module: str, distribution: str, checked_on: tuple[str, ...]
) -> str | None:
    """None if the installed `distribution` is absent or a major.minor in
    `checked_on`; otherwise the message that says what to re-check."""
    version = installed_version(distribution)
    if version is None:
        return None
    minor = ".".join(version.split(".")[:2])
    if minor in checked_on:
        return None
    return (
        f"{distribution} {version} is installed, but "
        f"edge_backbones/_compat/{module}.py was checked on "
        f"{', '.join(checked_on)} only. Check each private call listed in "
        "that module against this version, then add it to CHECKED_ON."
    )

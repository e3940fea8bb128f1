"""Group attributes: every write sealed with the digests that make an edited spec an error, and stamped."""

from __future__ import annotations

import datetime as dt

import zarr

from .. import __version__
from .integrity import seal
from .schema import SCHEMA_VERSION


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def stamp(state: str, created: str | None = None) -> dict:
    when = now()
    return {"version": __version__, "created": created or when, "updated": when, "state": state}


def new_root_attrs() -> dict:
    return {"actstore": {"schema_version": SCHEMA_VERSION, "version": __version__, "created": now(), "updated": now()}}


def is_complete(group: zarr.Group) -> bool:
    """Whether a group's stamp says every part of it is in."""
    return group.attrs["stamp"]["state"] == "complete"


def put_attrs(group: zarr.Group, attrs: dict) -> None:
    """Every attribute write of a group: sealed with the digests ``Store._group`` checks."""
    group.attrs.put(seal(group, attrs))

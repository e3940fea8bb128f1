"""mkdocs hooks (mkdocs.yml `hooks:`) of the documentation site: the CLI reference rendered from the Typer app, and
links to repository files outside docs/ shown as their paths.

The site is built from docs/ alone, but its pages link to files beside it (data/experiments/demo.toml, schemas/,
../shared/METHOD.md) so that they read well on a checkout or a forge too. mkdocs --strict would refuse those links;
this hook checks that each such target exists (a warning, so --strict fails, where it does not) and writes it as the
path from the repository's root instead of a link.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

log = logging.getLogger("mkdocs.hooks.actstore")

#: the lines of a page that the CLI reference and the repository's README replace
CLI_MARKER = "<!-- cli-reference -->"
README_MARKER = "<!-- readme -->"
LINK = re.compile(r"(?<!!)\[(?P<text>[^\]]+)\]\((?P<target>[^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def cli_reference() -> str:
    """Every command's help, as `typer actstore.cli.app utils docs` writes it, one section per command."""
    import typer.main
    from typer.cli import get_docs_for_click

    from actstore.cli.app import app

    command = typer.main.get_command(app)
    text = get_docs_for_click(obj=command, ctx=typer.Context(command), name="actstore", indent=1)
    # help texts name placeholders as <store>, <mask>: outside code, Markdown would take them for HTML tags

    def escape(prose: str) -> str:
        return re.sub(r"<([\w .:/|-]+)>", r"&lt;\1&gt;", prose)

    return _outside_fences(text, lambda prose: _outside_spans(prose, escape))


def _outside_fences(text: str, change) -> str:
    """``change`` applied to the text between the fenced blocks of ``text``."""
    pieces, end = [], 0
    for fence in FENCE.finditer(text):
        pieces += [change(text[end : fence.start()]), fence.group()]
        end = fence.end()
    return "".join([*pieces, change(text[end:])])


def _outside_spans(text: str, change) -> str:
    """``change`` applied to the text between the code spans of ``text``."""
    return "".join(part if i % 2 else change(part) for i, part in enumerate(re.split(r"(`[^`\n]*`)", text)))


def readme(root: Path, page_dir: Path) -> str:
    """The repository's README.md with its links made relative to ``page_dir`` (the page that shows it)."""

    def relink(match: re.Match) -> str:
        target = match["target"]
        if re.match(r"^[a-z][a-z0-9+.-]*:|^#|^/", target):
            return match.group()
        path, _, anchor = target.partition("#")
        moved = _from(page_dir, root / path) + ("/" if path.endswith("/") else "") + (f"#{anchor}" if anchor else "")
        return f"[{match['text']}]({moved})"

    return _outside_fences((root / "README.md").read_text(), lambda prose: LINK.sub(relink, prose))


def on_page_markdown(markdown: str, page, config, files) -> str:
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_reference())
    docs = Path(config["docs_dir"]).resolve()
    root = Path(config["config_file_path"]).resolve().parent
    source = Path(page.file.abs_src_path).parent
    if README_MARKER in markdown:
        markdown = markdown.replace(README_MARKER, readme(root, source))

    def outside(match: re.Match) -> str:
        target = match["target"]
        if re.match(r"^[a-z][a-z0-9+.-]*:|^#|^/", target):
            return match.group()
        path = (source / target.split("#")[0]).resolve()
        if path.is_relative_to(docs) and files.get_file_from_path(path.relative_to(docs).as_posix()) is not None:
            return match.group()  # a page or a file of the site: mkdocs checks it
        if path == root / "README.md":  # the site's home page shows it
            anchor = target.partition("#")[2]
            return f"[{match['text']}]({_from(source, docs / 'index.md')}{'#' + anchor if anchor else ''})"
        if not path.exists():
            log.warning("%s links to %s, which does not exist", page.file.src_uri, target)
            return match.group()
        shown = path.relative_to(root).as_posix() if path.is_relative_to(root) else _from(root, path)
        text = match["text"]
        return text if shown in text else f"{text} (`{shown}`)"

    return _outside_fences(markdown, lambda prose: LINK.sub(outside, prose))


def _from(root: Path, path: Path) -> str:
    """``path`` relative to ``root`` with ``..`` where it lies outside it (../shared/METHOD.md)."""
    import os

    return Path(os.path.relpath(path, root)).as_posix()

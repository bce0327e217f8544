"""A griffe extension for the API reference: kpose's docstrings are Google style with a few
reStructuredText habits, which Markdown would show as raw text. Before mkdocstrings
renders a docstring, this rewrites

- Sphinx roles (``:func:`~kpose.x.f` ``, ``:class:`Skeleton` ``, ``:data:``, ``:mod:``,
  ``:meth:``, ``:attr:``) into optional cross-references: a link where the object is on a
  page of the reference, plain code where it is not (never a broken link or a warning);
- a paragraph ending in ``::`` (a literal block follows) into one ending in ``:``;
- reStructuredText simple tables (columns under ``=====  =====`` rules) into Markdown
  tables.

The source files are not changed. mkdocs.yml loads this file (``extensions:``) and keeps
it out of the site (``exclude_docs``).
"""

from __future__ import annotations

import re

import griffe

# A role, with the backslash and space that reStructuredText needs before a suffix
# (":class:`PoseRecord`" + backslash + " s").
ROLE = re.compile(r":(?:func|class|data|mod|meth|attr|obj|exc):`(~?)([\w.]+)(?:\(\))?`(?:\\ )?")
RULE = re.compile(r"^( *)(=+(?: +=+)+) *$")


class RstToMarkdown(griffe.Extension):
    """Rewrites every docstring of a package once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        for obj in _objects(pkg):
            if obj.docstring is not None:
                obj.docstring.value = convert(obj.docstring.value, obj)


def _objects(obj: griffe.Object):
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _objects(member)


def convert(text: str, obj: griffe.Object) -> str:
    text = ROLE.sub(lambda match: _reference(match, obj), text)
    text = re.sub(r"(\S)::\n", r"\1:\n", text)
    return _tables(text)


def _reference(match: re.Match, obj: griffe.Object) -> str:
    short, name = match.group(1) == "~", match.group(2)
    title = name.rsplit(".", 1)[-1] if short else name
    identifier = name
    scope = obj if obj.is_module or obj.is_class else obj.parent
    try:  # a name relative to where the docstring is (``Skeleton``, ``RECIPES``)
        first, _, rest = name.partition(".")
        identifier = scope.resolve(first) + (f".{rest}" if rest else "")
    except Exception:  # noqa: BLE001  (not resolvable here: keep the name as written)
        pass
    return f'<autoref identifier="{identifier}" optional><code>{title}</code></autoref>'


def _tables(text: str) -> str:
    lines, out, i = text.split("\n"), [], 0
    while i < len(lines):
        rule = RULE.match(lines[i])
        end = _table_end(lines, i) if rule else None
        if end is None:
            out.append(lines[i])
            i += 1
            continue
        indent = len(rule.group(1))
        spans = [(m.start() + indent, m.end() + indent)
                 for m in re.finditer(r"=+", rule.group(2))]
        header, rows = None, []
        for line in lines[i + 1:end]:
            if RULE.match(line):
                continue
            cells = [_cell(line, start, spans[k + 1][0] if k + 1 < len(spans) else None)
                     for k, (start, _) in enumerate(spans)]
            if header is None:
                header = cells
            elif not cells[0] and rows:  # a continuation line: its text joins the row
                rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], cells)]
            else:
                rows.append(cells)
        pad = " " * indent
        out.append(pad + "| " + " | ".join(header) + " |")
        out.append(pad + "|" + "---|" * len(header))
        out.extend(pad + "| " + " | ".join(row) + " |" for row in rows)
        i = end + 1
    return "\n".join(out)


def _table_end(lines: list[str], start: int) -> int | None:
    """The line of the closing rule of a simple table opened at ``start`` (header, rule,
    body, rule), or None."""
    rules = [j for j in range(start, len(lines)) if RULE.match(lines[j])]
    blank = next((j for j in range(start, len(lines)) if not lines[j].strip()), len(lines))
    rules = [j for j in rules if j < blank]
    return rules[2] if len(rules) >= 3 else None


def _cell(line: str, start: int, stop: int | None) -> str:
    return line[start:stop].strip().replace("|", "\\|")

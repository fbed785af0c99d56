"""Clean pages: the plumbing cells that only call ``derivations.pages`` (their output is the content) lose
their source, and long code cells (figures) are folded behind "Show the code", before myst-nb's
HideInputCells post-transform (priority 199) renders the fold.

Pages that are nothing but such calls (the index, the ledger, the corrections, the annotated notes) are not
notebooks: the ``workbook`` directive calls the ``derivations.pages`` function it names in the Sphinx process
and parses the MyST it returns in place, as myst-nb parses a cell's Markdown output, without starting a
kernel for the page (about 4 s of a build each, measured)::

    ```{workbook} annotated_note 001
    ```
"""

from __future__ import annotations

from typing import ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util.docutils import SphinxDirective

LONG = 8  # lines of code shown unfolded


def _is_plumbing(source: str) -> bool:
    lines = [line.strip() for line in source.splitlines() if line.strip() and not line.strip().startswith("#")]
    return bool(lines) and all(line.startswith(("pages.", "from derivations import pages", "claims = pages."))
                               for line in lines)


class CleanCells(SphinxPostTransform):
    default_priority = 150
    formats = ("html",)

    def run(self, **kwargs) -> None:
        for cell in list(self.document.findall(nodes.container)):
            if cell.get("nb_element") != "cell_code":
                continue
            source = next((c for c in cell.children if c.get("nb_element") == "cell_code_source"), None)
            if source is None:
                continue
            text = source.astext()
            if _is_plumbing(text):
                cell.remove(source)
            elif len(text.splitlines()) > LONG and not cell.get("hide_mode"):
                cell["hide_mode"] = "input"
                cell["prompt_show"] = f"Show the code ({len(text.splitlines())} lines)"
                cell["prompt_hide"] = "Hide the code"


class Workbook(SphinxDirective):
    """``{workbook} NAME [ARGUMENT]``: the MyST that ``derivations.pages.NAME(ARGUMENT)`` returns, parsed here."""

    required_arguments, optional_arguments = 1, 1
    option_spec: ClassVar[dict] = {"class": directives.class_option}  # e.g. full-width, as a cell tag gives

    def run(self) -> list[nodes.Node]:
        from derivations import pages
        from derivations.runner import DEFAULT_REPORT

        name = self.arguments[0]
        function = None if name.startswith("_") else getattr(pages, name, None)
        if not callable(function):
            raise self.error(f"derivations.pages has no page function {name!r}")
        markdown = str(function(*self.arguments[1:]))
        self.env.note_dependency(str(DEFAULT_REPORT))  # re-read when a new report is made
        container = nodes.container(classes=self.options.get("class", []))
        source, _ = self.get_source_info()
        self.state.nested_parse(StringList(markdown.splitlines(), source=source), self.content_offset, container)
        return [container] if self.options.get("class") else container.children


def setup(app: Sphinx) -> dict:
    app.add_directive("workbook", Workbook)
    app.add_post_transform(CleanCells)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

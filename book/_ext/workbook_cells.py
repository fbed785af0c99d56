"""Clean pages: the plumbing cells that only call ``derivations.pages`` (their output is the content) lose
their source, and long code cells (figures) are folded behind "Show the code", before myst-nb's
HideInputCells post-transform (priority 199) renders the fold."""

from __future__ import annotations

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.transforms.post_transforms import SphinxPostTransform

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


def setup(app: Sphinx) -> dict:
    app.add_post_transform(CleanCells)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

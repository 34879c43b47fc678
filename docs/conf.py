"""Sphinx configuration: the user guide (MyST Markdown), the example notebooks executed against the
built-in simulator while the site builds (MyST-NB), and the API reference (autodoc).

    sphinx-build -W --keep-going docs docs/_build/html

The notebooks are copied from ../examples into docs/examples/ (generated, not committed) at every build, with
their data; they run in that folder, so what they write (an exported notebook, a saved prompt) stays there.
No key is used: AIHUBMIX_API_KEY is removed from the environment, so each notebook's `%aihubmix demo auto`
turns demo mode on and every answer comes from the simulator on loopback (no network).
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

from docutils import nodes
from sphinx.transforms import SphinxTransform

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # the package from this checkout, also for the kernels (PYTHONPATH below)

# the notebooks run in demo mode: no key, no base URL, no default model from the reader's environment
for name in ("AIHUBMIX_API_KEY", "AIHUBMIX_BASE_URL", "AIHUBMIX_MODEL"):
    os.environ.pop(name, None)
# a fresh response cache and personal folder for each build: answers are simulated, never old ones from a cache
_SCRATCH = Path(tempfile.mkdtemp(prefix="aihubmix-docs-"))
atexit.register(shutil.rmtree, _SCRATCH, True)
os.environ["AIHUBMIX_CACHE_PATH"] = str(_SCRATCH / "cache" / "responses.sqlite")
os.environ["AIHUBMIX_CONFIG_DIR"] = str(_SCRATCH / "config")
os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))


def _copy_examples() -> None:
    target = DOCS / "examples"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    for notebook in sorted((ROOT / "examples").glob("[0-9][0-9]-*.ipynb")):
        shutil.copy2(notebook, target / notebook.name)
    shutil.copytree(ROOT / "examples" / "data", target / "data")
    shutil.copy2(ROOT / "examples" / "reviews_server.py", target / "reviews_server.py")  # 06's MCP server


_copy_examples()

import aihubmix_magic  # noqa: E402  (after sys.path)

project = "aihubmix-magic"
author = "aihubmix-magic contributors"
copyright = "aihubmix-magic contributors"
release = version = aihubmix_magic.__version__

extensions = [
    "myst_nb",  # MyST Markdown pages and executed notebooks
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "examples/data", "examples/.aihubmix", "**/.ipynb_checkpoints"]
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}

# MyST
myst_enable_extensions = ["colon_fence", "deflist", "substitution"]  # no dollarmath: "$1.00 | $5.00" is prices
# the error tree, as the errors module draws it in its docstring (wherever that module lives)
_errors_doc = sys.modules[aihubmix_magic.AihubmixError.__module__].__doc__ or ""


def _settings_table() -> str:
    """Every setting (a traitlet tagged config=True), its default and its help, in the order they are defined."""
    from traitlets import TraitType

    rows = ["| setting | default | meaning |", "|---|---|---|"]
    seen: set[str] = set()
    for klass in reversed(aihubmix_magic.Settings.__mro__):
        for name, trait in vars(klass).items():
            if isinstance(trait, TraitType) and trait.metadata.get("config") and name not in seen:
                seen.add(name)
                meaning = " ".join(trait.help.split()).replace("|", "\\|")
                rows.append(f"| `{name}` | `{trait.default_value!r}` | {meaning} |")
    return "\n".join(rows)


myst_substitutions = {"error_tree": "```text\n" + _errors_doc.strip() + "\n```", "settings_table": _settings_table()}
myst_heading_anchors = 3

# MyST-NB: run every notebook at every build; a cell that fails (unless tagged raises-exception) fails it
nb_execution_mode = "force"
nb_execution_timeout = 120  # seconds per cell
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True
nb_render_markdown_format = "myst"  # Markdown outputs have tables (%aihubmix models, --over); CommonMark has none
# A JSON answer (-f json) is displayed as application/json, text/markdown (a fenced block) and text/plain;
# MyST-NB renders every type of a bundle before picking one for HTML (the Markdown here), and has no
# renderer for application/json: the warning is about that unused alternative
suppress_warnings = ["mystnb.unknown_mime_type"]

# autodoc: the public names, as `aihubmix_magic.X` (the private modules may move)
autodoc_default_options = {"members": True, "undoc-members": False}
autodoc_member_order = "bysource"
autodoc_class_signature = "separated"  # a class's fields are its documented attributes, not a long signature
default_role = "code"  # the docstrings are written with Markdown's `code` spans
autodoc_typehints = "description"
autodoc_preserve_defaults = True

# HTML: the PyData theme
html_theme = "pydata_sphinx_theme"
html_title = "aihubmix-magic"
html_static_path = ["_static"]
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version", "theme-version"],
}
html_sidebars = {"index": []}


class NestedTransitionsToRules(SphinxTransform):
    """A `---` in a notebook's Markdown output (a conversation's history) is a docutils transition inside
    an output container, which docutils refuses; show it as the horizontal rule it was."""

    default_priority = 800  # before docutils' own check of transitions (830)

    def apply(self, **kwargs) -> None:
        for transition in list(self.document.findall(nodes.transition)):
            if not isinstance(transition.parent, (nodes.section, nodes.document)):
                transition.replace_self(nodes.raw("", "<hr/>", format="html"))


def _skip_constructors(app, what, name, obj, skip, options):
    """A constructor is documented for the classes users build (`Client`, `Request`, `Tool`); the value
    types they are handed (Response, Usage, ...) show their fields as attributes instead."""
    if name == "__init__":
        return getattr(obj, "__qualname__", "").split(".")[0] not in {"Client", "Request", "Tool"}
    return None


def setup(app):
    app.add_transform(NestedTransitionsToRules)
    app.connect("autodoc-skip-member", _skip_constructors)

"""Build and check mdsim's documentation.

    python docs/build.py            write docs/reference.md, then check links and run the examples
    python docs/build.py --check    change nothing; fail when docs/reference.md is stale too

Three things are checked (``tests/test_docs.py`` runs the same functions, so CI
fails on any of them):

1. **Links.** Every relative link in README.md and docs/*.md must point to a
   file or folder of the repository; a ``#anchor`` must be the slug of a
   heading of the target page (GitHub's rules: lower case, punctuation
   dropped, spaces to hyphens, ``-1``, ``-2`` for repeats). External links
   (``http:``, ``https:``, ``mailto:``) are not fetched.
2. **Examples.** The doctest examples (``>>>`` lines) in the code blocks of
   README.md and docs/*.md, and in the docstrings of every public module of
   the ``mdsim`` package, are run with the standard library's ``doctest``
   (flags ELLIPSIS and NORMALIZE_WHITESPACE), in an empty temporary working
   folder. The examples of one Markdown page share their names, in page
   order. An example that needs a file creates it in a temporary folder.
3. **Reference.** docs/reference.md is generated from the docstrings and
   signatures of mdsim's public names; ``--check`` fails when the committed
   file differs from what this script would write.

Exit status: 0 when everything passes, 1 otherwise (each problem is printed
as ``file:line: what``). Importing the model and metric modules starts
TensorFlow (10-20 s).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import doctest
import importlib
import inspect
import io
import os
import pkgutil
import pprint
import re
import sys
import tempfile
import textwrap
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
REFERENCE = DOCS / "reference.md"
if str(ROOT) not in sys.path:  # run as a script: docs/ is on the path, the package is not
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: Pages whose examples are not run: generated from docstrings (which are run) or from --help.
GENERATED_PAGES = ("reference.md", "cli.md")
DOCTEST_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


# ======================================================================================
# Markdown: pages, code fences, headings, links


def markdown_files(root: Path = ROOT) -> list[Path]:
    """README.md and every docs/*.md, in a stable order."""
    files = [root / "README.md"] if (root / "README.md").exists() else []
    return files + sorted((root / "docs").glob("*.md"))


_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")


def split_fences(text: str):
    """Yield ``(lineno, line, fence)`` for every line; ``fence`` is the info string of
    the code block the line is in (``""`` for a block without one), ``None`` outside.

    The fence lines themselves count as inside.
    """
    opener = None
    info = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        m = _FENCE.match(line)
        if opener is None:
            if m and not (m.group(1)[0] == "`" and "`" in m.group(2)):
                opener, info = m.group(1), m.group(2).strip()
                yield lineno, line, info
                continue
            yield lineno, line, None
        else:
            yield lineno, line, info
            if m and m.group(1)[0] == opener[0] and len(m.group(1)) >= len(opener) and not m.group(2).strip():
                opener = info = None


_INLINE_CODE = re.compile(r"(`+)(.+?)\1")
_HTML_TAG = re.compile(r"<[^>]+>")
_MD_LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\]]*\])*)\]\(\s*<?([^)\s>]*)>?(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
_REF_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:\s+(.*?))?(?:\s+#+)?\s*$")
_HTML_ID = re.compile(r"<[a-zA-Z][^>]*\b(?:id|name)\s*=\s*[\"']([^\"']+)[\"']")


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading (before ``-1``, ``-2`` for repeats).

    >>> github_slug("Similarity rules per dimension (who is a positive)")
    'similarity-rules-per-dimension-who-is-a-positive'
    >>> github_slug("`mdsim.labels.parse_key`")
    'mdsimlabelsparse_key'
    >>> github_slug("Speed: 2 × 2 pooling, **not** 3 × 3")
    'speed-2--2-pooling-not-3--3'
    """
    text = _MD_LINK.sub(lambda m: m.group(1), heading)
    text = _INLINE_CODE.sub(lambda m: m.group(2), text)
    text = _HTML_TAG.sub("", text)
    # emphasis markers are not part of the rendered text; snake_case underscores are
    text = re.sub(r"[*~]", "", text)
    text = re.sub(r"(?<!\w)_+|_+(?!\w)", "", text)
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def heading_anchors(text: str) -> set[str]:
    """Every anchor a page defines: heading slugs (with repeats numbered) and HTML ids."""
    seen: dict[str, int] = {}
    anchors: set[str] = set()
    for _, line, fence in split_fences(text):
        if fence is not None:
            continue
        m = _ATX.match(line)
        if m:
            slug = github_slug(m.group(2) or "")
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            anchors.add(slug if n == 0 else f"{slug}-{n}")
        anchors.update(_HTML_ID.findall(line))
    return anchors


def page_links(text: str):
    """Yield ``(lineno, target)`` for every link and image outside code."""
    for lineno, line, fence in split_fences(text):
        if fence is not None:
            continue
        bare = _INLINE_CODE.sub("", line)
        for m in _MD_LINK.finditer(bare):
            yield lineno, m.group(2)
        m = _REF_DEF.match(bare)
        if m:
            yield lineno, m.group(1)


_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
_LINE_ANCHOR = re.compile(r"^L\d+(-L\d+)?$")


def check_links(files=None, *, root: Path = ROOT) -> list[str]:
    """Problems with the relative links of ``files`` (default: :func:`markdown_files`).

    Returns
    -------
    list of str
        ``"path:line: link 'target': what is wrong"``, empty when every link resolves.
    """
    files = markdown_files(root) if files is None else [Path(f) for f in files]
    root = root.resolve()
    anchors_of: dict[Path, set[str]] = {}

    def anchors(path: Path) -> set[str]:
        if path not in anchors_of:
            anchors_of[path] = heading_anchors(path.read_text(encoding="utf-8"))
        return anchors_of[path]

    problems = []
    for page in files:
        page = page.resolve()
        shown = _shown(page, root)
        for lineno, target in page_links(page.read_text(encoding="utf-8")):
            if not target or _SCHEME.match(target):
                continue  # external (http, https, mailto): not fetched
            path_part, _, anchor = target.partition("#")
            where = f"{shown}:{lineno}: link {target!r}"
            dest = (page.parent / urllib.parse.unquote(path_part)).resolve() if path_part else page
            if root != dest and root not in dest.parents:
                problems.append(f"{where}: points outside the repository")
                continue
            if not dest.exists():
                problems.append(f"{where}: no such file {_shown(dest, root)}")
                continue
            if not anchor:
                continue
            anchor = urllib.parse.unquote(anchor)
            if dest.suffix.lower() == ".md" and dest.is_file():
                if anchor not in anchors(dest):
                    problems.append(f"{where}: {_shown(dest, root)} has no heading with anchor #{anchor}")
            elif not _LINE_ANCHOR.match(anchor):
                problems.append(f"{where}: #{anchor} cannot be checked in a file that is not Markdown")
    return problems


def _shown(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


# ======================================================================================
# Examples


def markdown_doctest(path: Path, *, root: Path = ROOT) -> doctest.DocTest | None:
    """The ``>>>`` examples of every code block of a page, as one test (shared names)."""
    text = path.read_text(encoding="utf-8")
    parser = doctest.DocTestParser()
    examples = []
    block: list[str] = []
    start = 0
    for lineno, line, fence in split_fences(text):
        if fence is None:
            continue
        if not block:  # the opening fence
            block, start = [line], lineno
            continue
        block.append(line)
        if _FENCE.match(line) and not _FENCE.match(line).group(2).strip() and len(block) > 1:
            body = textwrap.dedent("\n".join(block[1:-1])) + "\n"
            if ">>>" in body:
                name = _shown(path.resolve(), root.resolve())
                for ex in parser.get_examples(body, name=name):
                    ex.lineno += start  # 0-based line in the file
                    examples.append(ex)
            block = []
    if not examples:
        return None
    name = _shown(path.resolve(), root.resolve())
    return doctest.DocTest(examples, {"__name__": "__docs__"}, name, str(path), 0, text)


def public_modules() -> list:
    """Every module of the ``mdsim`` package without a private name part, imported.

    ``mdsim.__main__`` is left out: importing it runs the command line.
    """
    import mdsim

    names = ["mdsim"] + sorted(
        m.name for m in pkgutil.walk_packages(mdsim.__path__, "mdsim.")
        if not any(part.startswith("_") for part in m.name.split(".")[1:]))
    return [importlib.import_module(n) for n in names]


def docstring_doctests() -> list[doctest.DocTest]:
    """The doctests of the docstrings of :func:`public_modules`, each found once (where defined)."""
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = []
    for module in public_modules():
        tests.extend(t for t in finder.find(module, module.__name__) if t.examples)
    return sorted(tests, key=lambda t: t.name)


@dataclasses.dataclass
class ExampleResult:
    """How a set of doctests went."""

    attempted: int = 0
    failed: int = 0
    tests: int = 0
    report: str = ""

    def __bool__(self) -> bool:
        return self.failed == 0


@contextlib.contextmanager
def _in_temporary_folder():
    old = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="mdsim-docs-") as tmp:
        os.chdir(tmp)
        try:
            yield Path(tmp)
        finally:
            os.chdir(old)


def run_doctests(tests) -> ExampleResult:
    """Run doctests in an empty temporary working folder; collect the failure reports."""
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=DOCTEST_FLAGS, verbose=False)
    result = ExampleResult()
    with _in_temporary_folder():
        for test in tests:
            globs = test.globs
            try:
                r = runner.run(test, out=out.write, clear_globs=False)
            finally:
                globs.clear()
            result.attempted += r.attempted
            result.failed += r.failed
            result.tests += 1
    result.report = out.getvalue()
    return result


def markdown_examples(files=None) -> ExampleResult:
    """Run the examples of README.md and docs/*.md (generated pages excepted)."""
    files = markdown_files() if files is None else [Path(f) for f in files]
    files = [f for f in files if not (f.resolve().parent == DOCS and f.name in GENERATED_PAGES)]
    tests = [markdown_doctest(f) for f in files]
    return run_doctests([t for t in tests if t is not None])


def docstring_examples() -> ExampleResult:
    """Run the examples in the docstrings of the mdsim package."""
    return run_doctests(docstring_doctests())


# ======================================================================================
# The API reference

#: The modules of docs/reference.md, in page order. A package contributes the names in
#: its ``__all__``; a module without ``__all__`` the functions, classes and UPPER_CASE
#: constants defined in it whose names do not start with ``_``.
REFERENCE_MODULES = (
    "mdsim",
    "mdsim.api",
    "mdsim.embed",
    "mdsim.labels",
    "mdsim.config",
    "mdsim.errors",
    "mdsim.audio",
    "mdsim.manifest",
    "mdsim.features.spectral",
    "mdsim.features.cqt",
    "mdsim.features.annotate",
    "mdsim.features.annotators",
    "mdsim.features.estimate",
    "mdsim.features.store",
    "mdsim.features.pipeline",
    "mdsim.features.augment",
    "mdsim.model",
    "mdsim.metric",
    "mdsim.training",
    "mdsim.training.pretrain",
    "mdsim.evaluation",
    "mdsim.manifold",
    "mdsim.training.neighbourhoods",
    "mdsim.training.manifold",
    "mdsim.evaluation.manifold",
    "mdsim.evaluation.manifold_figures",
    "mdsim.serve.manifold",
    "mdsim.search",
    "mdsim.serve",
    "mdsim.analysis",
)

_ROLE = re.compile(r":(?:func|class|meth|attr|mod|data|obj|exc|const|ref):`(~?)([^`]+)`")


def _md_inline(text: str) -> str:
    """reST inline markup of a docstring summary -> Markdown."""
    def role(m):  # :func:`~a.b.c` shows as `c`, :func:`a.b.c` as `a.b.c`
        tilde, target = m.groups()
        return f"`{target.rsplit('.', 1)[-1] if tilde else target}`"

    text = _ROLE.sub(role, text)
    return re.sub(r"``(.+?)``", r"`\1`", text)


def _split_doc(doc: str | None) -> tuple[str, str]:
    """``(summary paragraph, rest)`` of a docstring, dedented."""
    if not doc:
        return "", ""
    doc = inspect.cleandoc(doc)
    first, _, rest = doc.partition("\n\n")
    return " ".join(line.strip() for line in first.splitlines()), rest.strip("\n")


def _doc_block(doc: str | None) -> list[str]:
    summary, rest = _split_doc(doc)
    lines = []
    if summary:
        lines += [_md_inline(summary), ""]
    if rest:
        fence = "~~~~" if "```" in rest else "```"
        lines += [fence + "text", rest, fence, ""]
    return lines


@dataclasses.dataclass
class _Source:
    """Annotations and default values as written in the source, by parameter name."""

    annotations: dict
    defaults: dict


def _annotation_source(node) -> str:
    """An annotation as written, without the quotes of a forward reference."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return ast.unparse(node)


def _source_of(obj) -> _Source:
    """What the ``def`` (or a dataclass body) of ``obj`` says, when its source is available."""
    try:
        src = textwrap.dedent(inspect.getsource(inspect.unwrap(obj)))
        node = ast.parse(src).body[0]
    except (OSError, TypeError, SyntaxError, IndexError):
        return _Source({}, {})
    ann, defaults = {}, {}
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        a = node.args
        positional = a.posonlyargs + a.args
        for arg in positional + a.kwonlyargs + [x for x in (a.vararg, a.kwarg) if x]:
            if arg.annotation is not None:
                ann[arg.arg] = _annotation_source(arg.annotation)
        for arg, d in zip(positional[len(positional) - len(a.defaults):], a.defaults):
            defaults[arg.arg] = ast.unparse(d)
        for arg, d in zip(a.kwonlyargs, a.kw_defaults):
            if d is not None:
                defaults[arg.arg] = ast.unparse(d)
        if node.returns is not None:
            ann["return"] = _annotation_source(node.returns)
    elif isinstance(node, ast.ClassDef):
        for item in node.body:
            if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                ann[item.target.id] = _annotation_source(item.annotation)
                if item.value is not None:
                    text = ast.unparse(item.value)
                    m = re.fullmatch(r"field\(default_factory=(\w+)\)", text)
                    defaults[item.target.id] = f"{m.group(1)}()" if m else text
    return _Source(ann, defaults)


def _is_plain(value) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (tuple, list, frozenset)):
        return all(_is_plain(v) for v in value)
    return False


def _default_text(name: str, value, source: _Source) -> str:
    if _is_plain(value) and len(repr(value)) <= 60:
        return repr(value)
    if name in source.defaults:
        return source.defaults[name]
    text = repr(value)
    return f"<{type(value).__name__}>" if " at 0x" in text or text.startswith("<") else text


def _annotation_text(name: str, annotation, source: _Source) -> str | None:
    if annotation is inspect.Parameter.empty or annotation is inspect.Signature.empty:
        return None
    if name in source.annotations:
        return source.annotations[name]
    return annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)


def _signature(obj, name: str, *, source_obj=None, skip_first: bool = False,
               show_return: bool = True) -> str | None:
    """``name(params) -> ret`` from the signature, with source-text annotations and defaults.

    ``skip_first`` drops ``self`` or ``cls`` of a method.
    """
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    source = _source_of(source_obj if source_obj is not None else obj)
    params = []
    parameters = list(sig.parameters.values())[1 if skip_first else 0:]
    kinds = [p.kind for p in parameters]
    star_done = inspect.Parameter.VAR_POSITIONAL in kinds
    for i, p in enumerate(parameters):
        if p.kind == p.KEYWORD_ONLY and not star_done:
            params.append("*")
            star_done = True
        text = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "") + p.name
        ann = _annotation_text(p.name, p.annotation, source)
        if ann:
            text += f": {ann}"
        if p.default is not p.empty:
            text += (" = " if ann else "=") + _default_text(p.name, p.default, source)
        params.append(text)
        if p.kind == p.POSITIONAL_ONLY and (i + 1 == len(kinds) or kinds[i + 1] != p.POSITIONAL_ONLY):
            params.append("/")
    ret = _annotation_text("return", sig.return_annotation, source) if show_return else None
    tail = f" -> {ret}" if ret else ""
    one_line = f"{name}({', '.join(params)}){tail}"
    if len(one_line) <= 88:
        return one_line
    return f"{name}(\n" + "".join(f"    {p},\n" for p in params) + f"){tail}"


def _constant_comment(module, name: str) -> tuple[str, object] | None:
    """The ``#:`` comment above ``name = ...`` in ``module`` (or a submodule), and that module."""
    candidates = [module] + sorted(
        (m for n, m in list(sys.modules.items()) if m is not None and n.startswith(module.__name__ + ".")),
        key=lambda m: m.__name__)
    for mod in candidates:
        try:
            lines = inspect.getsource(mod).splitlines()
        except (OSError, TypeError):
            continue
        for node in ast.parse("\n".join(lines)).body:
            targets = (node.targets if isinstance(node, ast.Assign)
                       else [node.target] if isinstance(node, ast.AnnAssign) else [])
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                comment = []
                i = node.lineno - 2
                while i >= 0 and lines[i].lstrip().startswith("#:"):
                    comment.insert(0, lines[i].lstrip()[2:].strip())
                    i -= 1
                return " ".join(comment), mod
    return None


def _public_names(module) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is not None:
        return list(names)
    tree = ast.parse(inspect.getsource(module))
    out = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            out += [t.id for t in targets if isinstance(t, ast.Name) and t.id.isupper()]
    return [n for n in out if not n.startswith("_")]


def _members(cls):
    """Public methods and properties defined on ``cls`` itself, in source order."""
    for name, value in vars(cls).items():
        if name.startswith("_") and name != "__call__":
            continue
        if isinstance(value, (staticmethod, classmethod)):
            yield name, value.__func__, type(value).__name__
        elif inspect.isfunction(value):
            yield name, value, "method"
        elif isinstance(value, property):
            yield name, value.fget, "property"
        elif hasattr(value, "func") and type(value).__name__ == "cached_property":
            yield name, value.func, "property"


def _class_signature(cls, name: str) -> str:
    if issubclass(cls, BaseException) or getattr(cls, "_is_protocol", False):
        return f"class {name}"
    init = None
    for klass in cls.__mro__:
        if "__init__" in vars(klass) and klass is not object:
            init = vars(klass)["__init__"]
            break
    own_init = (init is not None and inspect.isfunction(init)
                and getattr(init, "__module__", "").startswith("mdsim"))
    # a dataclass or NamedTuple has its fields in the class body; others in their __init__
    source_obj = init if own_init and not dataclasses.is_dataclass(cls) else cls
    sig = _signature(cls, name, source_obj=source_obj, show_return=False)
    return f"class {sig}" if sig else f"class {name}"


def _bases(cls) -> str:
    bases = [b for b in cls.__bases__ if b is not object]
    if not bases:
        return ""
    shown = []
    for b in bases:
        if b.__module__.startswith("mdsim"):
            shown.append(f"`{b.__module__}.{b.__qualname__}`")
        else:
            shown.append(f"`{b.__qualname__}`")
    return "Bases: " + ", ".join(shown) + "."


class _Page:
    """Markdown lines with GitHub's anchor numbering, so the index links resolve."""

    def __init__(self):
        self.lines: list[str] = []
        self._slugs: dict[str, int] = {}

    def heading(self, level: int, text: str) -> str:
        slug = github_slug(text)
        n = self._slugs.get(slug, 0)
        self._slugs[slug] = n + 1
        self.lines += ["#" * level + " " + text, ""]
        return slug if n == 0 else f"{slug}-{n}"

    def add(self, *lines: str):
        self.lines.extend(lines)


def _entry(page: _Page, module, name: str) -> str:
    """Document ``module.name``; returns its anchor."""
    qualified = f"{module.__name__}.{name}"
    value = getattr(module, name)
    if inspect.isclass(value):
        anchor = page.heading(3, f"`{qualified}`")
        page.add("```python", _class_signature(value, name), "```", "")
        bases = _bases(value)
        defined = value.__module__
        note = [bases] if bases else []
        if defined != module.__name__:
            note.append(f"Defined in `{defined}`.")
        if note:
            page.add(" ".join(note), "")
        doc = value.__doc__
        if dataclasses.is_dataclass(value) and doc and doc.startswith(f"{value.__name__}("):
            doc = None  # the signature dataclasses write when a class has no docstring
        page.add(*_doc_block(doc))
        undocumented = []
        for member, func, kind in _members(value):
            if kind == "property":
                call = member
            else:
                call = _signature(func, member, skip_first=kind != "staticmethod") or f"{member}(...)"
            if not func.__doc__:
                undocumented.append(call)
                continue
            page.heading(4, f"`{value.__name__}.{member}`")
            label = {"property": "property ", "classmethod": "classmethod ", "staticmethod": "staticmethod "}
            page.add("```python", label.get(kind, "") + call, "```", "")
            page.add(*_doc_block(func.__doc__))
        if undocumented:
            page.add("Also: " + ", ".join(f"`{u}`" if "\n" not in u else f"`{' '.join(u.split())}`"
                                         for u in undocumented) + ".", "")
        return anchor
    if callable(value):
        anchor = page.heading(3, f"`{qualified}`")
        page.add("```python", _signature(value, name) or f"{name}(...)", "```", "")
        defined = getattr(inspect.unwrap(value), "__module__", module.__name__)
        if defined != module.__name__:
            page.add(f"Defined in `{defined}`.", "")
        page.add(*_doc_block(value.__doc__))
        return anchor
    # a constant
    anchor = page.heading(3, f"`{qualified}`")
    prefix = f"{name} = "
    text = pprint.pformat(value, width=88 - len(prefix), sort_dicts=False, compact=True)
    if " at 0x" in text:
        text = f"<{type(value).__name__}>"
    text = prefix + text.replace("\n", "\n" + " " * len(prefix))
    page.add("```python", text, "```", "")
    found = _constant_comment(module, name)
    if found and found[0]:
        page.add(_md_inline(found[0]), "")
    return anchor


def render_reference() -> str:
    """The text of docs/reference.md."""
    page = _Page()
    page.add("# Python API reference", "",
             "Generated from the docstrings and signatures by `python docs/build.py`; "
             "`tests/test_docs.py` fails when this file is stale. Do not edit it by hand: "
             "edit the docstring and run the script.", "",
             "Importing `mdsim`, `mdsim.model` or `mdsim.training` does not import Keras or "
             "TensorFlow; the names that need Keras load it on first use. The guides are "
             "[api.md](api.md) (the Python API by example), [model.md](model.md), "
             "[metric.md](metric.md), [training.md](training.md), "
             "[evaluation.md](evaluation.md) and [store.md](store.md).", "")
    modules = [importlib.import_module(n) for n in REFERENCE_MODULES]
    index_at = len(page.lines)
    module_anchors = []
    for module in modules:
        anchor = page.heading(2, f"`{module.__name__}`")
        module_anchors.append((module.__name__, anchor))
        page.add(*_doc_block(module.__doc__))
        names = _public_names(module)
        if module.__name__ == "mdsim":
            # re-exports: point to where they are documented
            rows = []
            for name in names:
                value = getattr(module, name)
                if inspect.isclass(value) or callable(value):
                    # where it is defined, or else the reference module exporting it (mdsim.search.Catalog)
                    home = value.__module__
                    if home not in REFERENCE_MODULES:
                        home = next((m.__name__ for m in modules[1:] if name in _public_names(m)
                                     and getattr(m, name) is value), home)
                    rows.append(f"- `mdsim.{name}`: see [`{home}.{name}`](#{github_slug(f'`{home}.{name}`')})")
                else:
                    rows.append(f"- `mdsim.{name} = {value!r}`")
            page.add(*rows, "")
            continue
        if not names:
            continue
        entries = []
        body_start = len(page.lines)
        for name in names:
            entries.append((name, _entry(page, module, name)))
        index = "Names: " + ", ".join(f"[`{n}`](#{a})" for n, a in entries) + "."
        page.lines[body_start:body_start] = [index, ""]
    toc = ["Modules: " + ", ".join(f"[`{n}`](#{a})" for n, a in module_anchors) + ".", ""]
    page.lines[index_at:index_at] = toc
    text = "\n".join(page.lines).rstrip("\n") + "\n"
    return text


# ======================================================================================
# Command line


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python docs/build.py",
        description="Write docs/reference.md from the docstrings, check every relative link of "
                    "README.md and docs/*.md, and run the doctest examples of the pages and of "
                    "the mdsim package.")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; fail when docs/reference.md differs from the generated text")
    parser.add_argument("--no-examples", action="store_true", help="skip running the examples")
    args = parser.parse_args(argv)

    failed = False
    reference = render_reference()
    current = REFERENCE.read_text(encoding="utf-8") if REFERENCE.exists() else None
    if args.check:
        if current != reference:
            print("docs/reference.md: stale; run `python docs/build.py` to regenerate it")
            failed = True
        else:
            print("docs/reference.md: up to date")
    elif current != reference:
        REFERENCE.write_text(reference, encoding="utf-8")
        print("docs/reference.md: written")
    else:
        print("docs/reference.md: up to date")

    problems = check_links()
    for p in problems:
        print(p)
    print(f"links: {len(markdown_files())} pages, {len(problems)} broken")
    failed |= bool(problems)

    if not args.no_examples:
        for what, result in (("Markdown examples", markdown_examples()),
                             ("docstring examples", docstring_examples())):
            if result.report:
                print(result.report, end="")
            print(f"{what}: {result.attempted} run in {result.tests} test(s), {result.failed} failed")
            failed |= not result
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

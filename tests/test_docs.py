"""The documentation builds: links resolve, examples run, the API reference is current.

The checks live in ``docs/build.py`` (``make docs`` or ``python docs/build.py``);
these tests call the same functions so that CI fails on a broken link, an
example that no longer runs, or a stale docs/reference.md.
"""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def build():
    spec = importlib.util.spec_from_file_location("mdsim_docs_build", ROOT / "docs" / "build.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_relative_links_resolve(build):
    problems = build.check_links()
    assert not problems, "broken links in the docs:\n" + "\n".join(problems)


def test_markdown_examples_run(build):
    result = build.markdown_examples()
    assert result.attempted > 0, "no >>> example found in README.md or docs/*.md"
    assert result, f"{result.failed} example(s) in README.md or docs/*.md failed:\n{result.report}"


def test_docstring_examples_run(build):
    result = build.docstring_examples()
    assert result.attempted > 0, "no >>> example found in the mdsim package"
    assert result, f"{result.failed} docstring example(s) failed:\n{result.report}"


def test_api_reference_matches_docstrings(build):
    assert (ROOT / "docs" / "reference.md").read_text(encoding="utf-8") == build.render_reference(), \
        "docs/reference.md is stale: run `python docs/build.py`"


# ---- the checker itself


def test_github_slugs(build):
    assert build.github_slug("Input features (one STFT grid for all three)") == \
        "input-features-one-stft-grid-for-all-three"
    assert build.github_slug("`mdsim prep`: features and annotations") == "mdsim-prep-features-and-annotations"
    assert build.github_slug("Throughput: loader against model") == "throughput-loader-against-model"
    assert build.github_slug("The [store](store.md) layout") == "the-store-layout"
    assert build.github_slug("snake_case and *emphasis*") == "snake_case-and-emphasis"


def test_checker_finds_broken_links_and_anchors(build, tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text(
        "# Page A\n\n## Same\n\n## Same\n\n```sh\n# not a heading\n```\n", encoding="utf-8")
    (tmp_path / "README.md").write_text(
        "[ok](docs/a.md) [ok](docs/a.md#same-1) [ok](#top) [web](https://example.org/x)\n"
        "[gone](docs/missing.md) [bad anchor](docs/a.md#not-a-heading) [up](../outside.md)\n"
        "`[in code](nowhere.md)`\n\n```\n[in a block](nowhere.md)\n```\n\n# Top\n", encoding="utf-8")
    problems = build.check_links(root=tmp_path)
    assert len(problems) == 3, problems
    assert "README.md:2: link 'docs/missing.md': no such file docs/missing.md" in problems
    assert any("has no heading with anchor #not-a-heading" in p for p in problems)
    assert any("points outside the repository" in p for p in problems)


def test_markdown_examples_are_found_and_failures_reported(build, tmp_path):
    page = tmp_path / "page.md"
    page.write_text("Text.\n\n```python\n>>> x = 2\n```\n\nMore.\n\n```pycon\n>>> x + 1\n4\n```\n",
                    encoding="utf-8")
    test = build.markdown_doctest(page, root=tmp_path)
    assert [ex.lineno for ex in test.examples] == [3, 9]  # 0-based lines in the page
    result = build.run_doctests([test])
    assert (result.attempted, result.failed) == (2, 1)
    assert "page.md" in result.report and "Expected:\n    4\nGot:\n    3" in result.report

"""The reference builds as a site with no broken link or anchor, and the README's links reach their files."""
import os
import re
import subprocess
import sys

from conftest import ROOT

LINK = re.compile(r'\]\(([^)\s]+)\)')


def test_docs_build_strict(tmp_path):
    r = subprocess.run([sys.executable, '-m', 'mkdocs', 'build', '--strict', '-d', str(tmp_path / 'site')],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / 'site' / 'index.html').is_file()


def test_nav_lists_every_page():
    with open(os.path.join(ROOT, 'mkdocs.yml')) as f:
        nav = set(re.findall(r'^  - [^:]+: (\S+\.md)$', f.read(), re.M))
    assert nav == {n for n in os.listdir(os.path.join(ROOT, 'docs')) if n.endswith('.md')}


def test_readme_links_reach_their_files_and_headings():
    with open(os.path.join(ROOT, 'README.md')) as f:
        text = f.read()
    links = [link for link in LINK.findall(text) if '://' not in link]
    assert links
    for link in links:
        path, _, anchor = link.partition('#')
        with open(os.path.join(ROOT, path)) as f:
            headings = {_slug(h) for h in re.findall(r'^#+ (.+)$', f.read(), re.M)}
        assert not anchor or anchor in headings, link


def test_no_quoted_cross_references_left():
    pages = [os.path.join(ROOT, 'README.md')] + [os.path.join(ROOT, 'docs', n) for n in os.listdir(
        os.path.join(ROOT, 'docs')) if n.endswith('.md') and n != 'security.md']
    for page in pages:
        with open(page) as f:
            assert not re.search(r'see "[A-Z]', f.read()), page


def _slug(heading: str) -> str:
    """A heading's anchor as Markdown's toc extension makes it."""
    return re.sub(r'[\s-]+', '-', re.sub(r'[^\w\s-]', '', heading).strip().lower())

"""Replace one ``##`` section of a markdown file (the benchmark tools write their tables so)."""
import os.path as osp
import re
from pathlib import Path
from typing import Optional


def replace_doc_section(doc: str, section: str, title: Optional[str] = None) -> None:
    """Replace (or append) the ``##`` section headed ``title`` of ``doc``; other sections stay.

    Args:
        doc (str): Markdown file; created (with a ``# Benchmarks`` title) when missing.
        section (str): The new section, starting with its ``## ...`` title line.
        title (str, optional): The title line of the section to replace. Defaults to the first
            line of ``section``.
    """
    title = section.split('\n', 1)[0] if title is None else title
    text = Path(doc).read_text() if osp.isfile(doc) else '# Benchmarks\n'
    pattern = re.compile(re.escape(title) + r'\n.*?(?=^## |\Z)', re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + '\n', text, count=1)
    else:
        text = text.rstrip('\n') + '\n\n' + section
    Path(doc).write_text(text.rstrip('\n') + '\n')

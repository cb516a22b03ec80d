"""Names shown as text: a class, folder, run or file name must never restyle the page.

Names come from folders, zips and checkpoints other people made. ``st.markdown`` (and captions,
labels, alerts and toasts, which are markdown too) would turn ``**x**`` bold, ``[a](b)`` into a link
and ``![i](url)`` into an image the browser fetches; ``md`` makes a name read literally there.
"""

from __future__ import annotations

import re

# Every ASCII punctuation character can be backslash-escaped in Markdown; escaping them all also
# covers Streamlit's own syntax (``:red[...]``, ``:material/icon:``, ``$math$``).
_PUNCT = re.compile(r"([!-/:-@\[-`{-~])")
_SPACE = re.compile(r"[\x00-\x1f\x7f]+")


def md(name: object) -> str:
    """``name`` as literal text inside Markdown: punctuation escaped, line breaks made spaces."""
    return _PUNCT.sub(r"\\\1", _SPACE.sub(" ", str(name)))

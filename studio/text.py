"""Names shown as text: a class, folder, run or file name must never restyle the page.

Names come from folders, zips and checkpoints other people made. ``st.markdown`` (and captions,
labels, alerts and toasts, which are markdown too) would turn ``**x**`` bold, ``[a](b)`` into a link
and ``![i](url)`` into an image the browser fetches; ``md`` makes a name read literally there.

It escapes what can start markup and leaves the rest alone, so paths and run ids stay readable
in the page source: emphasis and code (``* _ ` ~``), links and images (``[ ] < >``), math
(``$``), Streamlit's ``:red[...]`` and ``:material/icon:`` and bare ``http://`` autolinks (a
``:`` that touches the next character), and what would make a heading, list or quote at the
start. Bare URLs, ``www.`` and e-mail addresses get an invisible word joiner that keeps them
from becoming links.
"""

from __future__ import annotations

import re

_ALWAYS = re.compile(r"([\\`*~\[\]<>$@|])")
_COLON = re.compile(r":(?=\S)")  # "a: b" stays; ":red[", ":material/", "http://" are escaped
_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")  # intraword _ is never emphasis
# Bare URLs and e-mail addresses are turned into links after escapes are undone (a text-level
# transform), so escaping cannot stop them: an invisible WORD JOINER after the scheme, after
# "www" and before "@" breaks the pattern without changing what is shown.
_AUTOLINK = re.compile(r"(?i)(https?|mailto|xmpp|www)(?=\\?[:.])")
_AT = re.compile(r"\\@")
WORD_JOINER = "\u2060"
_LEADING = re.compile(r"^(\s*)([#>+=-])")
_NUMBERED = re.compile(r"^(\s*\d+)([.)])")  # "1. x" would start a numbered list
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def md(name: object) -> str:
    """``name`` as literal text inside Markdown; line breaks and control characters become
    spaces (a name is one line)."""
    text = _CONTROL.sub(" ", str(name))
    text = _ALWAYS.sub(r"\\\1", text)
    text = _UNDERSCORE.sub(r"\\_", text)
    text = _COLON.sub(r"\\:", text)
    text = _AUTOLINK.sub(lambda m: m.group(1) + WORD_JOINER, text)
    text = _AT.sub(WORD_JOINER + "\\\\@", text)
    text = _LEADING.sub(lambda m: m.group(1) + "\\" + m.group(2), text)
    text = _NUMBERED.sub(lambda m: m.group(1) + "\\" + m.group(2), text)
    return text

"""CARD.md (YAML front matter + Markdown) and card.html (self-contained) from one list of blocks.

Both files are written from the same blocks, so they cannot disagree. Blocks: ("h", level, text),
("p", text), ("table", headers, rows), ("img", file name, alt text). In the HTML, images are
embedded as base64 data URIs. A paragraph, cell or heading whose first strong letter is Persian
gets dir="rtl" lang="fa"; in any other (left-to-right) text each Persian run is isolated in
<bdi dir="rtl" lang="fa">, so a Persian sentence quoted in English keeps its own order and
the English around it keeps its own (the bidi algorithm would otherwise move the neutral
punctuation between them). In tables, words wrap at spaces and hyphens and `code` (commits,
hashes, paths) anywhere, so the widest table (sources, voices) fits a 1280 px window.
"""

from __future__ import annotations

import base64
import html
import re

import yaml

from .persian_text import has_persian

_ARABIC_LETTER = "\u0600-\u06ff\u0750-\u077f\ufb50-\ufdff\ufe70-\ufeff"
_STRONG = re.compile(f"[A-Za-z\u00c0-\u024f{_ARABIC_LETTER}]")
# A Persian run: Persian letters, with the spaces, joiners, digits and sentence punctuation between
# them (and its guillemets); it ends on a letter or a closing mark. No `&`, `;`, `<`, `*`, backtick
# or bracket, so it never splits an HTML entity or a Markdown mark of `_inline`.
_PERSIAN_RUN = re.compile(f"«?[{_ARABIC_LETTER}](?:[{_ARABIC_LETTER}\\s\u200c\u200d0-9.,:!?«»-]*"
                          f"[{_ARABIC_LETTER}.!?»])?")

Block = tuple


def _cell(value) -> str:
    if value is None:
        return "—"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown(front_matter: dict, blocks: list[Block]) -> str:
    out = ["---", yaml.safe_dump(front_matter, allow_unicode=True, sort_keys=False).rstrip(), "---", ""]
    for block in blocks:
        kind = block[0]
        if kind == "h":
            out += ["#" * block[1] + " " + block[2], ""]
        elif kind == "p":
            out += [block[1], ""]
        elif kind == "table":
            headers, rows = block[1], block[2]
            out.append("| " + " | ".join(_cell(h) for h in headers) + " |")
            out.append("|" + "|".join("---" for _ in headers) + "|")
            out += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
            out.append("")
        elif kind == "img":
            out += [f"![{block[2]}]({block[1]})", ""]
    return "\n".join(out).rstrip() + "\n"


def _rtl(text: str) -> bool:
    """Right to left when the first strong letter is Persian (as dir="auto" decides)."""
    first = _STRONG.search(text)
    return bool(first) and has_persian(first.group())


def _dir(text: str) -> str:
    return ' dir="rtl" lang="fa"' if _rtl(text) else ""


def _inline(text: str) -> str:
    """The few Markdown marks the blocks use: `code`, **bold** and [links](target) (to a page on
    the web or to a file beside the card); Persian runs in left-to-right text isolated."""
    escaped = html.escape(text)
    if has_persian(text) and not _rtl(text):
        escaped = _PERSIAN_RUN.sub(lambda m: f'<bdi dir="rtl" lang="fa">{m.group()}</bdi>', escaped)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    escaped = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", escaped)
    return re.sub(r"\[([^\]]+)\]\((https?://[^)\s]+|[\w.-]+)\)", r'<a href="\2">\1</a>', escaped)


STYLE = """
body{font-family:"Vazirmatn","Noto Naskh Arabic","Noto Sans Arabic","DejaVu Sans",sans-serif;max-width:64rem;
margin:2rem auto;padding:0 1rem;color:#222;line-height:1.5}
table{border-collapse:collapse;margin:0.5rem 0 1rem;max-width:100%}
td,th{border:1px solid #ccc;padding:0.2rem 0.5rem;text-align:start;vertical-align:top;overflow-wrap:break-word}
td code{overflow-wrap:anywhere}
th{background:#f3f3f3}img{max-width:100%;height:auto;border:1px solid #eee}code{background:#f6f6f6;padding:0 0.2rem}
pre{background:#f6f6f6;padding:0.5rem;overflow-x:auto;white-space:pre-wrap;overflow-wrap:anywhere}
""".strip()


def html_page(title: str, front_matter: dict, blocks: list[Block], images: dict[str, bytes]) -> str:
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{html.escape(title)}</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
           "<details><summary>front matter</summary><pre>"
           + html.escape(yaml.safe_dump(front_matter, allow_unicode=True, sort_keys=False)) + "</pre></details>"]
    for block in blocks:
        kind = block[0]
        if kind == "h":
            out.append(f"<h{block[1]}{_dir(block[2])}>{_inline(block[2])}</h{block[1]}>")
        elif kind == "p":
            out.append(f"<p{_dir(block[1])}>{_inline(block[1])}</p>")
        elif kind == "table":
            out.append("<table><thead><tr>" + "".join(f"<th{_dir(str(h))}>{_inline(str(h))}</th>" for h in block[1])
                       + "</tr></thead><tbody>")
            for row in block[2]:
                out.append("<tr>" + "".join(f"<td{_dir(_cell(v))}>{_inline(_cell(v))}</td>" for v in row) + "</tr>")
            out.append("</tbody></table>")
        elif kind == "img":
            data = base64.b64encode(images[block[1]]).decode("ascii")
            out.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(block[2])}">'
                       f"<figcaption>{html.escape(block[1])}</figcaption></figure>")
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"

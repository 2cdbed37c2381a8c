"""A web page that needs nothing but itself: its styles, Vega's chart library once, its
sections, and each chart's Vega-Lite spec drawn into its own element by the page's script.
Every text given is escaped, and the specs' JSON cannot end the script that holds it."""

from __future__ import annotations

import html
import json

import altair as alt
import pandas as pd
from altair.utils.html import import_vl_convert, vl_version_for_vl_convert

# What the charts' menu offers: saving a picture, not the Vega editor (another host).
EMBED_OPTIONS = {"renderer": "svg",
                 "actions": {"export": True, "source": False, "compiled": False,
                             "editor": False}}


def escaped(value) -> str:
    """Any text from the store, as text in HTML (never markup)."""
    return html.escape(str(value), quote=True)


def _script_json(value) -> str:
    """JSON safe inside a <script> element: no '</script>' or '<!--' can end or change it."""
    found = json.dumps(value, ensure_ascii=False, default=str)
    for raw, safe in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                      ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        found = found.replace(raw, safe)
    return found


class OfflinePage:
    """A page being written: its sections' HTML, and its charts' specs by element id."""

    def __init__(self, title: str):
        self.title = title
        self.parts: list[str] = []
        self.specs: dict[str, dict] = {}

    def add(self, markup: str) -> None:
        """Markup made here (text from users goes through escaped or the methods below)."""
        self.parts.append(markup)

    def heading(self, text: str) -> None:
        self.add(f"<h2>{escaped(text)}</h2>")

    def paragraph(self, text: str, css: str = "") -> None:
        self.add(f'<p class="{css}">{escaped(text)}</p>' if css else f"<p>{escaped(text)}</p>")

    def chart(self, chart: alt.TopLevelMixin, caption: str = "") -> None:
        """A chart: an element the page's script draws the spec into."""
        element = f"chart-{len(self.specs) + 1}"
        spec = chart.to_dict()
        if "facet" not in spec:  # as wide as the page, as the dashboard draws it
            spec["width"] = "container"
        self.specs[element] = spec
        self.add(f'<figure class="chart"><div id="{element}" class="vega-chart"></div>'
                 + (f"<figcaption>{escaped(caption)}</figcaption>" if caption else "")
                 + "</figure>")

    def table(self, frame: pd.DataFrame, columns: dict[str, str]) -> None:
        """Some columns of a table, under the given headings, every cell escaped."""
        head = "".join(f"<th>{escaped(title)}</th>" for title in columns.values())
        rows = "".join("<tr>" + "".join(f"<td>{escaped(_cell(row[c]))}</td>" for c in columns)
                       + "</tr>" for _, row in frame.iterrows())
        self.add(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")

    def facts(self, pairs: list[tuple[str, str]]) -> None:
        """Label and value pairs, as a two-column list."""
        self.add("<dl>" + "".join(f"<dt>{escaped(k)}</dt><dd>{escaped(v)}</dd>" for k, v in pairs)
                 + "</dl>")

    def html(self) -> str:
        """The whole page: the styles, Vega's library once, the sections, the charts' specs."""
        library = import_vl_convert().javascript_bundle(vl_version=vl_version_for_vl_convert())
        return PAGE.format(title=escaped(self.title), library=library, body="\n".join(self.parts),
                           specs=_script_json(self.specs), options=_script_json(EMBED_OPTIONS))


def _cell(value) -> str:
    """A table cell's value in words: '-' for none, a number to one decimal."""
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


# The page's frame. Each chart's element gets data-drawn="yes" once Vega has drawn it, or
# data-drawn="failed" and the reason in its place (what a reader and the browser test see).
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 1100px; padding: 0 1rem; color: #222; line-height: 1.45; }}
h1 {{ margin-bottom: 0.2rem; overflow-wrap: anywhere; }}
h2 {{ margin-top: 2.2rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; }}
.made {{ color: #666; font-size: 0.9rem; }}
dl {{ display: grid; grid-template-columns: max-content 1fr; gap: 0.2rem 1.2rem; }}
dt {{ font-weight: 600; }} dd {{ margin: 0; overflow-wrap: anywhere; }}
table {{ border-collapse: collapse; font-size: 0.9rem; margin: 0.5rem 0; }}
th, td {{ border-bottom: 1px solid #e4e4e4; padding: 0.25rem 0.7rem; text-align: left; }}
th {{ background: #f5f5f5; }}
figure.chart {{ margin: 1rem 0; }} .vega-chart {{ width: 100%; }}
figcaption {{ color: #666; font-size: 0.875rem; }}
.note {{ color: #666; }}
</style>
<script>
{library}
</script>
</head>
<body>
{body}
<script>
(function () {{
  const specs = {specs};
  const options = {options};
  for (const id of Object.keys(specs)) {{
    const element = document.getElementById(id);
    vegaEmbed(element, specs[id], options).then(function () {{
      element.dataset.drawn = "yes";
    }}).catch(function (error) {{
      element.dataset.drawn = "failed";
      element.textContent = "This chart could not be drawn: " + error;
    }});
  }}
}})();
</script>
</body>
</html>
"""

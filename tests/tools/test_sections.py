"""Section detection per file type, on samples shaped like real files of each kind."""

from __future__ import annotations

from collections.abc import Sequence

from tongyi_agent.tools.sections import enclosing, find_sections


def headers_above(label: str, text: str, line: int) -> list[str]:
    """The header lines (text) of every section around `line`, outermost first."""
    lines = text.splitlines()
    sections = find_sections(label, lines)
    return [lines[n - 1] for index in enclosing(sections, line) for n in sections[index].header]


def span(label: str, text: str, line: int) -> tuple[int, int]:
    lines = text.splitlines()
    sections = find_sections(label, lines)
    inner = enclosing(sections, line)[-1]
    return sections[inner].start, sections[inner].end


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


MARKDOWN = """\
# Project guide

Intro text.

## Installing

```bash
# not a heading: inside a code fence
pip install thing
```

Use a virtual environment.

Upgrading
---------

Run the upgrade command.
"""


def test_markdown_atx_and_setext_headings_outside_code_fences() -> None:
    assert headers_above("docs/guide.md", MARKDOWN, line_of(MARKDOWN, "pip install")) == [
        "# Project guide", "## Installing"]
    assert headers_above("docs/guide.md", MARKDOWN, line_of(MARKDOWN, "upgrade command")) == [
        "# Project guide", "Upgrading"]
    assert span("docs/guide.md", MARKDOWN, line_of(MARKDOWN, "virtual environment")) == (5, 12)


RST = """\
=========
User docs
=========

Configuration
=============

The ``timeout`` key sets seconds.

Network options
---------------

Set ``proxy`` for outbound calls.

Logging
=======

Levels follow the stdlib.
"""


def test_restructuredtext_levels_follow_first_use_of_each_underline() -> None:
    assert headers_above("docs/index.rst", RST, line_of(RST, "proxy")) == [
        "User docs", "Configuration", "Network options"]
    assert headers_above("docs/index.rst", RST, line_of(RST, "stdlib")) == ["User docs", "Logging"]


DEBIAN = """\
xz-utils (5.6.2-1) unstable; urgency=medium

  * New upstream release.
  * Drop the patch for CVE-2024-3094, fixed upstream.

 -- Sebastian Andrzej Siewior <sebastian@breakpoint.cc>  Wed, 12 Jun 2024 21:20:01 +0200

xz-utils (5.6.1+really5.4.5-1) unstable; urgency=critical

  * Revert to 5.4.5.

 -- Salvatore Bonaccorso <carnil@debian.org>  Thu, 28 Mar 2024 22:28:11 +0100
"""


def test_debian_changelog_entry_with_its_signing_trailer() -> None:
    assert headers_above("debian/changelog", DEBIAN, line_of(DEBIAN, "CVE-2024-3094")) == [
        "xz-utils (5.6.2-1) unstable; urgency=medium",
        " -- Sebastian Andrzej Siewior <sebastian@breakpoint.cc>  Wed, 12 Jun 2024 21:20:01 +0200"]
    assert headers_above("debian/changelog", DEBIAN, line_of(DEBIAN, "Revert")) == [
        "xz-utils (5.6.1+really5.4.5-1) unstable; urgency=critical",
        " -- Salvatore Bonaccorso <carnil@debian.org>  Thu, 28 Mar 2024 22:28:11 +0100"]


KEEP_A_CHANGELOG = """\
# Changelog
All notable changes to this project will be documented in this file.

## [Unreleased]

## [1.2.3] - 2024-01-01
### Fixed
- Crash when the config file is empty.

### Added
- A `--dry-run` flag.

## [1.2.2] - 2023-11-20
### Fixed
- Typo in the help text.
"""


def test_keep_a_changelog_versions_and_change_types() -> None:
    assert headers_above("CHANGELOG.md", KEEP_A_CHANGELOG, line_of(KEEP_A_CHANGELOG, "dry-run")) == [
        "# Changelog", "## [1.2.3] - 2024-01-01", "### Added"]
    assert headers_above("CHANGELOG.md", KEEP_A_CHANGELOG, line_of(KEEP_A_CHANGELOG, "Typo")) == [
        "# Changelog", "## [1.2.2] - 2023-11-20", "### Fixed"]


CLICK_STYLE = """\
.. currentmodule:: click

Version 8.3.0
--------------

Released 2025-09-15

-   Lazily import ``shutil``. :pr:`3023`

Version 8.2.2
-------------

Released 2025-07-31

-   Fix completion for the Z shell.
"""


def test_version_lines_take_the_release_date_line_below_them() -> None:
    assert headers_above("CHANGES.rst", CLICK_STYLE, line_of(CLICK_STYLE, "Z shell")) == [
        "Version 8.2.2", "Released 2025-07-31"]


IDNA_STYLE = """\
History
-------

3.11 (2025-10-12)

- Update to Unicode 16.0.0.

3.10 (2024-09-15)
+++++++++++++++++

- Reverted to Unicode 15.1.0 data.
"""


def test_bare_and_underlined_version_date_lines_are_one_level() -> None:
    # 3.11 has no underline, 3.10 has one: both are entries under "History", neither inside the other.
    assert headers_above("HISTORY.rst", IDNA_STYLE, line_of(IDNA_STYLE, "16.0.0")) == ["History", "3.11 (2025-10-12)"]
    assert headers_above("HISTORY.rst", IDNA_STYLE, line_of(IDNA_STYLE, "15.1.0")) == ["History", "3.10 (2024-09-15)"]
    assert span("HISTORY.rst", IDNA_STYLE, line_of(IDNA_STYLE, "16.0.0"))[0] == 4


NEWS_WITH_SIGNOFF = """\
1.4.0 - 2025-02-03

Fix the overflow in the parser for inputs over 4 GiB.

Signed-off-by: Ada Example <ada@example.org>

1.3.9 - 2024-12-30

Update translations.
"""


def test_signed_off_by_trailer_names_the_entry() -> None:
    assert headers_above("NEWS", NEWS_WITH_SIGNOFF, line_of(NEWS_WITH_SIGNOFF, "overflow")) == [
        "1.4.0 - 2025-02-03", "Signed-off-by: Ada Example <ada@example.org>"]
    assert headers_above("NEWS", NEWS_WITH_SIGNOFF, line_of(NEWS_WITH_SIGNOFF, "translations")) == [
        "1.3.9 - 2024-12-30"]


def test_a_version_quoted_mid_paragraph_is_not_an_entry() -> None:
    text = "Release notes\n=============\n\nUpgrading from\n1.2.0 (2020-01-01) is covered below.\n"
    assert headers_above("NOTES.txt", text, 5) == ["Release notes"]


PYTHON = """\
import os


class Store:
    \"\"\"Keeps rows.\"\"\"

    def __init__(self, path):
        self.path = path

    async def fetch(self, key):
        # comment at the body's indent
        return os.environ.get(key)


def helper(x):
    return x * 2
"""


def test_python_def_and_class_nest_by_indentation() -> None:
    assert headers_above("pkg/store.py", PYTHON, line_of(PYTHON, "os.environ")) == [
        "class Store:", "    async def fetch(self, key):"]
    assert headers_above("pkg/store.py", PYTHON, line_of(PYTHON, "x * 2")) == ["def helper(x):"]
    assert span("pkg/store.py", PYTHON, line_of(PYTHON, "self.path = path")) == (7, 8)
    assert headers_above("pkg/store.py", PYTHON, 1) == []


JAVASCRIPT = """\
import fs from "fs";

export class Cache {
  constructor(dir) {
    this.dir = dir;
  }
}

export async function load(name) {
  const raw = fs.readFileSync(name, "utf8");
  return JSON.parse(raw);
}

const double = (x) => x * 2;
"""


def test_javascript_functions_classes_and_arrow_functions() -> None:
    assert headers_above("src/cache.js", JAVASCRIPT, line_of(JAVASCRIPT, "JSON.parse")) == [
        "export async function load(name) {"]
    assert span("src/cache.js", JAVASCRIPT, line_of(JAVASCRIPT, "readFileSync")) == (9, 12)
    assert headers_above("src/cache.js", JAVASCRIPT, line_of(JAVASCRIPT, "this.dir")) == ["export class Cache {"]
    assert headers_above("src/cache.js", JAVASCRIPT, line_of(JAVASCRIPT, "x * 2")) == [
        "const double = (x) => x * 2;"]


INI = """\
; service settings
[billing]
port = 8443
owner = payments

[search]
port = 9200
"""


def test_ini_sections() -> None:
    assert headers_above("conf/services.ini", INI, line_of(INI, "9200")) == ["[search]"]
    assert headers_above("conf/services.ini", INI, line_of(INI, "owner")) == ["[billing]"]
    assert headers_above("conf/services.ini", INI, 1) == []


def test_csv_header_row_heads_every_row() -> None:
    text = "region,month,revenue\nnorth,jan,1200\nsouth,feb,1005\n"
    assert headers_above("data/sales.csv", text, 3) == ["region,month,revenue"]
    assert headers_above("data/sales.tsv", "a\tb\n1\t2\n", 2) == ["a\tb"]


PLAIN = """\
Meeting notes

The budget was approved at 120k.
Hiring starts in March.

Action items

Maria books the venue.
"""


def test_plain_text_fallback_short_line_then_blank() -> None:
    assert headers_above("notes.txt", PLAIN, line_of(PLAIN, "Hiring")) == ["Meeting notes"]
    assert headers_above("notes.txt", PLAIN, line_of(PLAIN, "venue")) == ["Action items"]


def test_prose_without_headings_has_no_sections() -> None:
    lines: Sequence[str] = ["the cache is fast", "after cache", "cache eviction uses LRU order"]
    assert find_sections("notes.txt", lines) == []
    assert find_sections("empty.csv", []) == []

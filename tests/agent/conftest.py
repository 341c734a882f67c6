"""A small project the agent tests search: one fact (port 8443) at a known `path:line`."""

from __future__ import annotations

from pathlib import Path

import pytest

BILLING_LINE = "The billing service listens on port 8443."


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "services").mkdir(parents=True)
    (root / "config").mkdir()
    (root / "README.md").write_text("# Demo shop\nA small shop with a billing service and a catalogue.\n")
    (root / "services" / "billing.md").write_text(
        f"# Billing\n\n{BILLING_LINE}\nInvoices are sent on the first day of the month.\n"
    )
    (root / "services" / "catalogue.md").write_text("# Catalogue\n\nThe catalogue service listens on port 7000.\n")
    (root / "config" / "app.ini").write_text("[app]\nname = shop\ndebug = false\n")
    return root

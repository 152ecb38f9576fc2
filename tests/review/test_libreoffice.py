"""A review workbook survives a round trip through LibreOffice Calc (headless), as many reviewers use it."""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from pathlib import Path

from skuforge import review
from tests.review.test_excel_round_trip import _decide


def libreoffice_resave(path: Path, out_dir: Path) -> Path:
    """Open the workbook in LibreOffice Calc and save it again as xlsx, as a reviewer's Calc would."""
    soffice = shutil.which("soffice")
    assert soffice, "LibreOffice is not installed: scripts/setup.sh dev installs libreoffice-calc-nogui"
    profile = out_dir / "lo-profile"
    subprocess.run(
        [soffice, f"-env:UserInstallation=file://{profile}", "--headless", "--calc",
         "--convert-to", "xlsx", "--outdir", str(out_dir), str(path)],
        check=True, capture_output=True, timeout=180,
    )  # fmt: skip
    return out_dir / path.name


def test_decisions_saved_by_libreoffice_calc_are_applied(make_job, tmp_path):
    job = make_job()
    path = review.export_xlsx(job.store, job.job_id, tmp_path / "review.xlsx").path
    _decide(path, {"A1": ("approve", None), "A3": ("edit", "Northwind Jacket"), "A6": ("reject", None)})
    saved = libreoffice_resave(path, tmp_path / "calc")
    with zipfile.ZipFile(saved) as xlsx:
        sheet = xlsx.read("xl/worksheets/sheet1.xml").decode()
    assert "<dataValidation" in sheet  # Calc kept the Decision drop-down
    report = review.import_xlsx(job.store, job.job_id, saved, who="calc-user")
    assert report.problems == []
    assert report.applied == {"approve": 1, "edit": 1, "reject": 1}
    assert job.item("A3").output == {"title": "Northwind Jacket"}

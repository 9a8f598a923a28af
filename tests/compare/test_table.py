"""ComparisonTable: exports that round-trip, and clear errors for files that are not tables."""

import math

import numpy as np
import pytest

from varseg.compare import ComparisonTable


def _table():
    return ComparisonTable(
        rows=[
            {"method": "a", "energy": 1.23456789, "time": 0.315081, "converged": True, "n_iter": 7},
            {
                "method": "b",
                "energy": float("nan"),
                "time": 12.3456,
                "converged": False,
                "n_iter": 0,
                "error": "ValueError: boom",
            },
        ],
        lam=0.2,
        meta={"n_phases": np.int64(2)},
    )


def test_csv_json_round_trip_exactly(tmp_path):
    t = _table()
    back = ComparisonTable.from_csv(t.to_csv(tmp_path / "t.csv"), lam=0.2)
    assert back.rows[0] == t.rows[0]
    assert math.isnan(back.rows[1]["energy"]) and back.rows[1]["error"] == "ValueError: boom"
    j = ComparisonTable.from_json(t.to_json(tmp_path / "sub" / "t.json"))
    assert j.lam == 0.2 and j.meta == {"n_phases": 2} and j.rows[0] == t.rows[0]


@pytest.mark.parametrize(
    "content, kind",
    [
        (b"", "csv"),
        (b"\xff\xfe\x00garbage", "csv"),
        (b"a,b\n1,2\n", "csv"),
        (b"method,energy\nx,1,2\n", "csv"),
        (b"", "json"),
        (b"{not json", "json"),
        (b"[1, 2]", "json"),
        (b'{"rows": [{"energy": 1}]}', "json"),
    ],
)
def test_bad_files_give_one_line_value_errors(tmp_path, content, kind):
    p = tmp_path / f"bad.{kind}"
    p.write_bytes(content)
    reader = ComparisonTable.from_csv if kind == "csv" else ComparisonTable.from_json
    with pytest.raises(ValueError) as info:
        reader(p)
    msg = str(info.value)
    assert str(p) in msg and "\n" not in msg
    with pytest.raises(FileNotFoundError, match="not found"):
        reader(tmp_path / "missing")


def test_times_are_rounded_in_displays_not_in_data():
    t = _table()
    text = t.to_markdown()
    assert "0.315 " in text and "0.315081" not in text and "12.3 " in text
    assert "1.23457" in text  # other floats keep the table's format
    assert t.rows[0]["time"] == 0.315081


def test_pandas_and_notebook_html():
    pd = pytest.importorskip("pandas")
    t = _table()
    df = t.to_pandas()
    assert isinstance(df, pd.DataFrame) and list(df["method"]) == ["a", "b"]
    assert df.loc[0, "energy"] == pytest.approx(1.23456789)
    page = t._repr_html_()
    assert page.count("<tr>") == 3 and "λ = 0.2" in page
    evil = ComparisonTable(rows=[{"method": "<script>x</script>", "energy": 1.0}])
    assert "<script>" not in evil.to_html() and "&lt;script&gt;" in evil.to_html()


def test_all_failed():
    t = _table()
    assert not t.all_failed
    t.rows = [r for r in t.rows if r.get("error")]
    assert t.all_failed
    assert not ComparisonTable().all_failed

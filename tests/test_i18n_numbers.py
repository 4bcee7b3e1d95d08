"""Numbers on Spanish pages: tables with a decimal comma, and number fields that say they take a point."""

from __future__ import annotations

from test_i18n import _page_in_spanish, decimal_points, finished_run  # noqa: F401 (a fixture)
from test_pages import texts

NOTE_ES = "Los campos numéricos se escriben con punto decimal (0.5)"


def test_spanish_pages_with_decimal_fields_say_they_take_a_point(demo_root):
    app = _page_in_spanish(demo_root, "train")
    assert any(c.value.startswith(NOTE_ES) for c in app.caption)
    app.selectbox(key="keep_lang").set_value("en").run()
    assert not app.exception, app.exception
    assert "Image size (px)" in [n.label for n in app.number_input]
    assert "decimal point" not in texts(app)  # in English the fields and the tables agree


def test_the_tta_table_writes_a_decimal_comma_in_spanish(demo_root, finished_run):  # noqa: F811
    app = _page_in_spanish(demo_root, "results", finished_run.name)
    app.toggle(key="res_tta").set_value(True).run()
    assert not app.exception, app.exception
    assert decimal_points(app) == []
    tta = next(frame.value for frame in app.dataframe if "AUC con TTA" in frame.value.columns)
    assert all("," in value for value in tta["AUC con TTA"] if value), tta

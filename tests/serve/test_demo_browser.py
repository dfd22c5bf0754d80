"""The web demo in a real headless Chromium (Debian's `chromium`, driven by Playwright): type, submit, and
the highlighted spans are the entities the student predicts, in place, with their types."""

from __future__ import annotations

import shutil

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install 'xtremedistil[serve]')")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the dev extra)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium); .ci/run installs it"
)

from tests.serve.helpers import TEXTS, running, saved_tiny_student  # noqa: E402
from xtremedistil.serve import create_app  # noqa: E402
from xtremedistil.student.saved import load_student  # noqa: E402


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    return load_student(saved_tiny_student(tmp_path_factory.mktemp("demo") / "student"))


@pytest.fixture(scope="module")
def page(predictor):
    with running(create_app(predictor)) as url, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(url + "/")
        page.wait_for_selector("#legend span")  # /health was read
        yield page
        browser.close()


def shown(page) -> list[dict]:
    """Each result box: its text as shown without the type labels, and its highlighted (type, text)."""
    return page.eval_on_selector_all(
        "#result .text",
        """boxes => boxes.map(box => {
            const copy = box.cloneNode(true);
            copy.querySelectorAll('.label, .none').forEach(n => n.remove());
            return {
                text: copy.textContent,
                marks: [...box.querySelectorAll('mark.entity')].map(m =>
                    [m.dataset.type, m.querySelector('.entity-text').textContent]),
            };
        })""",
    )


def submit(page, text: str | None = None, button: str = "#tag") -> None:
    if text is not None:
        page.fill("#input", text)
    page.evaluate("document.body.dataset.state = ''")
    page.click(button)
    page.wait_for_selector("body[data-state=done]")


def test_typed_texts_are_highlighted_in_place_with_their_types(page, predictor):
    texts = [*TEXTS, "😀 alice lives in paris"]  # an emoji: offsets count code points, not UTF-16 units
    submit(page, "\n".join(texts))
    boxes = shown(page)
    expected = predictor.predict(texts)
    assert any(expected)
    assert [b["text"] for b in boxes] == texts  # the text is all there, in order, highlights in place
    for box, entities in zip(boxes, expected, strict=True):
        assert box["marks"] == [[e.type, e.text] for e in entities]
    assert "ms round trip" in page.inner_text("#latency")
    assert page.inner_text("#error") == ""


def test_an_example_button_fills_the_box_and_tags_it(page, predictor):
    submit(page, None, "button.example:has-text('中文')")
    value = page.input_value("#input")
    assert value and any("\u4e00" <= ch <= "\u9fff" for ch in value)
    boxes = shown(page)
    assert [b["text"] for b in boxes] == [value]
    assert boxes[0]["marks"] == [[e.type, e.text] for e in predictor.predict([value])[0]]


def test_the_server_refusal_is_shown_not_swallowed(page):
    page.fill("#input", "x" * 2500)  # over the default 2,000 characters per text
    page.evaluate("document.body.dataset.state = ''")
    page.click("#tag")
    page.wait_for_selector("body[data-state=error]")
    assert "413" in page.inner_text("#error") and "2000" in page.inner_text("#error")

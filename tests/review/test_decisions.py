"""Decisions through the Python API: queue, approve, reject, edit, rollback and the audit trail."""

from __future__ import annotations

import pytest

from skuforge import review
from skuforge.errors import NotFoundError, UserError
from skuforge.review import audit
from skuforge.review.audit import MISSING


def test_flagged_items_wait_in_the_queue_and_clean_ones_do_not(make_job):
    job = make_job()
    flagged = {i.row_id for i in job.items("flagged")}
    done = {i.row_id for i in job.items("done")}
    assert flagged and done  # the fixture catalog gives both
    page = review.queue(job.store, job.job_id)
    assert {e.item.row_id for e in page} == flagged
    assert all("limit is at most 20" in e.reasons[0] for e in page)
    counts = review.queue_counts(job.store, job.job_id)
    assert (counts.pending, counts.flagged, counts.reviewable) == (len(flagged), len(flagged), 6)


def test_queue_pages_carry_the_source_row_when_asked(make_job):
    job = make_job()
    first = review.queue(job.store, job.job_id, limit=1, with_source=True)
    rest = review.queue(job.store, job.job_id, offset=1, limit=50)
    assert len(first) == 1
    assert first[0].source["sku"] == first[0].item.row_id
    assert first[0].item.row_id not in {e.item.row_id for e in rest}


def test_review_sample_sends_clean_items_to_the_queue_too(make_job):
    job = make_job("short_title", "--review-sample", "1")
    pending = {e.item.row_id for e in review.queue(job.store, job.job_id, limit=100)}
    assert pending == {f"A{n}" for n in range(1, 7)}
    sampled = next(e for e in review.queue(job.store, job.job_id, limit=100) if e.item.status == "done")
    assert sampled.reasons == ["sampled for review (no check flagged it)"]


def test_approve_records_who_when_and_the_previous_state(make_job):
    job = make_job()
    decision = review.decide(job.store, job.job_id, "A1", "short_title", "", "approve", comment="fine")
    assert decision.review == "approved"
    assert job.item("A1").review == "approved"
    (entry,) = review.history(job.store, job.job_id, "A1")
    assert (entry.action, entry.field, entry.before, entry.after) == (
        "approve",
        "review",
        "pending",
        "approved",
    )
    assert (entry.who, entry.comment) == ("ana", "fine")
    assert entry.at > 0


def test_a_plain_text_edit_of_a_one_field_output_replaces_that_field(make_job):
    job = make_job()
    before = job.item("A1").output
    review.decide(job.store, job.job_id, "A1", "short_title", "", "edit", edited="Acme Trail Shoe", who="bo")
    item = job.item("A1")
    assert item.output == {"title": "Acme Trail Shoe"}
    assert (item.review, item.status, item.error) == ("edited", "done", None)
    change, state = review.history(job.store, job.job_id, "A1")
    assert (change.field, change.before, change.after, change.who) == (
        "title",
        before["title"],
        "Acme Trail Shoe",
        "bo",
    )
    assert (state.field, state.before, state.after) == ("review", "pending", "edited")


def test_an_edit_that_still_breaks_a_flag_check_is_kept_with_its_warning(make_job):
    job = make_job()
    decision = review.decide(
        job.store, job.job_id, "A1", "short_title", "", "edit", edited="Acme Trail Running Shoe, Mesh"
    )
    assert [f.reason for f in decision.findings] == ["'title' has 29 characters; the limit is at most 20."]
    assert job.item("A1").status == "flagged"
    assert job.item("A1").review == "edited"


def test_an_edit_that_breaks_the_schema_is_rejected_with_the_field_and_nothing_changes(make_job):
    job = make_job("listing")
    before = job.item("A1")
    with pytest.raises(review.EditRejected) as caught:
        review.decide(
            job.store, job.job_id, "A1", "listing", "", "edit", edited='{"bullets": "one long line"}'
        )
    assert "row 'A1', step 'listing'" in caught.value.message
    assert "bullets" in caught.value.message and "not of type 'array'" in caught.value.message
    assert job.item("A1").output == before.output and job.item("A1").review == "pending"
    assert review.history(job.store, job.job_id, "A1") == []


def test_an_edit_failing_a_fail_check_is_rejected_with_the_check_reason(make_job):
    job = make_job()
    with pytest.raises(review.EditRejected) as caught:
        review.decide(job.store, job.job_id, "A1", "short_title", "", "edit", edited="Ac")
    assert "fails the recipe's checks" in caught.value.message
    assert "the limit is at least 3" in caught.value.message
    assert job.item("A1").review == "pending"


def test_a_json_edit_of_a_dict_output_writes_one_audit_row_per_changed_field(make_job):
    job = make_job("listing")
    before = job.item("A1").output
    review.decide(
        job.store,
        job.job_id,
        "A1",
        "listing",
        "",
        "edit",
        edited='{"title": "Acme Trail Shoe", "material": null}',
    )
    output = job.item("A1").output
    assert output == {**before, "title": "Acme Trail Shoe", "material": None}
    trail = review.history(job.store, job.job_id, "A1")
    assert [(e.action, e.field) for e in trail] == [
        ("edit", "title"),
        ("edit", "material"),
        ("edit", "review"),
    ]
    assert trail[1].before == before["material"] and trail[1].after is None


def test_a_multi_field_output_refuses_plain_text_and_says_to_write_json(make_job):
    job = make_job("listing")
    with pytest.raises(review.EditRejected) as caught:
        review.decide(job.store, job.job_id, "A1", "listing", "", "edit", edited="Acme Trail Shoe")
    assert "must be a JSON object" in caught.value.message
    assert '"title"' in caught.value.hint


def test_rollback_restores_the_previous_value_and_is_audited(make_job):
    job = make_job("listing")
    original = job.item("A1").output
    review.decide(job.store, job.job_id, "A1", "listing", "", "edit", edited='{"title": "First"}')
    review.decide(job.store, job.job_id, "A1", "listing", "", "edit", edited='{"title": "Second"}')
    undo = review.rollback(job.store, job.job_id, "A1", "listing", "", who="cy")
    assert job.item("A1").output["title"] == "First"
    assert undo.review == "edited"
    review.rollback(job.store, job.job_id, "A1", "listing", "")
    assert job.item("A1").output == original
    assert job.item("A1").review == "pending"
    rollbacks = [e for e in review.history(job.store, job.job_id, "A1") if e.action == "rollback"]
    assert [(e.field, e.before, e.after) for e in rollbacks] == [
        ("title", "Second", "First"),
        ("review", "edited", "edited"),
        ("title", "First", original["title"]),
        ("review", "edited", "pending"),
    ]
    assert rollbacks[0].who == "cy"
    with pytest.raises(UserError, match="no edit to roll back"):
        review.rollback(job.store, job.job_id, "A1", "listing", "")


def test_changes_mark_fields_an_edit_adds_or_removes_as_missing():
    changes = audit.output_changes("edit", {"a": 1, "b": 2}, {"a": 1, "c": None})
    assert [(c.field, c.before, c.after) for c in changes] == [("b", 2, MISSING), ("c", MISSING, None)]


def test_a_decision_about_a_regenerated_item_is_refused(make_job):
    job = make_job()
    with pytest.raises(review.StaleItemError, match="regenerated"):
        review.decide(job.store, job.job_id, "A1", "short_title", "", "approve", expected_key="0" * 64)
    assert job.item("A1").review == "pending"


def test_unknown_items_and_actions_say_what_to_do(make_job):
    job = make_job()
    with pytest.raises(NotFoundError, match="no item for row 'Z9'"):
        review.decide(job.store, job.job_id, "Z9", "short_title", "", "approve")
    with pytest.raises(UserError, match="Unknown review action 'bless'") as caught:
        review.decide(job.store, job.job_id, "A1", "short_title", "", "bless")
    assert caught.value.hint == "Use approve, reject or edit."


def test_an_edit_equal_to_the_current_output_counts_as_approval(make_job):
    job = make_job()
    text = job.item("A1").output["title"]
    decision = review.decide(job.store, job.job_id, "A1", "short_title", "", "edit", edited=text)
    assert (decision.action, job.item("A1").review) == ("approve", "approved")

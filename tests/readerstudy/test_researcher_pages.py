"""The researcher's side without a shell: questions, opening and closing, readers and
invitations, uploads imported by the task, and the archive restored."""

import io
import zipfile
from datetime import timedelta

import numpy as np
import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from readerstudy.archive import study_record
from readerstudy.models import Invitation, Question, Reader, Study, StudyImport
from readerstudy.tasks import import_upload
from tests.readerstudy.factories import (
    CaseFactory,
    ReconstructionFactory,
    StudyFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def draft(lead):
    study = StudyFactory(slug="knee", status=Study.Status.DRAFT)
    study.researchers.add(lead)
    return study


def question_post(study, **changes):
    """The setup form as the page posts it, with `changes` to the first question's fields."""
    data = {
        "study-title": study.title,
        "study-instructions": "",
        "study-end_message": "Done.",
        "study-presentation": study.presentation,
    }
    questions = list(study.questions.order_by("position"))
    data |= {
        "q-TOTAL_FORMS": str(len(questions) + 1),
        "q-INITIAL_FORMS": str(len(questions)),
        "q-MIN_NUM_FORMS": "0",
        "q-MAX_NUM_FORMS": "1000",
    }
    for i, question in enumerate(questions):
        data |= {
            f"q-{i}-id": str(question.pk),
            f"q-{i}-label": question.label,
            f"q-{i}-key": question.key,
            f"q-{i}-scale_min": str(question.scale_min),
            f"q-{i}-scale_max": str(question.scale_max),
            f"q-{i}-ORDER": str(i + 1),
            f"q-{i}-anchors_text": "\n".join(f"{k} = {v}" for k, v in question.anchors.items()),
        }
    data |= {f"q-0-{name}": value for name, value in changes.items()}
    return data


def test_questions_are_edited_with_errors_beside_the_field_and_locked_once_scored(client, draft):
    url = reverse("readerstudy:setup", args=[draft.slug])
    bad = client.post(url, question_post(draft, anchors_text="1 = Bad\n7 = Out of range"))
    assert bad.status_code == 200 and "Level 7 is outside the scale 1-5" in bad.content.decode()
    assert 'id="q-0-anchors_text-error"' in bad.content.decode()
    good = client.post(
        url,
        question_post(
            draft,
            label="Diagnostic confidence",
            scale_min="0",
            scale_max="3",
            anchors_text="0 = None\n3 = Certain",
        )
        | {"q-4-label": "Motion", "q-4-scale_min": "1", "q-4-scale_max": "4", "q-4-ORDER": "0"},
    )
    assert good.status_code == 302
    first, *_ = draft.questions.order_by("position")
    assert first.key == "motion", "the new question asked first (order 0)"
    confidence = draft.questions.get(key="overall")
    assert (confidence.label, confidence.scale_min, confidence.scale_max) == (
        "Diagnostic confidence",
        0,
        3,
    )
    assert confidence.anchors == {"0": "None", "3": "Certain"}
    # A score: the questions are fixed, the page says so, and a post cannot change them.
    recon = ReconstructionFactory(case__study=draft)
    draft.status = Study.Status.OPEN
    draft.save()
    item = draft.assign_reader(UserFactory()).assignments.get(reconstruction=recon)
    item.save_scores({"motion": 2})
    page = client.get(url).content.decode()
    assert 'id="questions-locked"' in page
    client.post(url, question_post(draft, label="Changed after scoring"))
    assert not draft.questions.filter(label="Changed after scoring").exists()


def test_a_study_opens_only_with_images_and_closing_stops_scoring(client, draft):
    url = reverse("readerstudy:status", args=[draft.slug])
    client.post(url, {"status": "open"})
    draft.refresh_from_db()
    assert draft.status == Study.Status.DRAFT
    ReconstructionFactory(case__study=draft)
    client.post(url, {"status": "open"})
    draft.refresh_from_db()
    assert draft.status == Study.Status.OPEN
    item = draft.assign_reader(UserFactory()).assignments.get()
    client.post(url, {"status": "closed"})
    draft.refresh_from_db()
    assert draft.status == Study.Status.CLOSED
    with pytest.raises(Exception, match="closed"):
        item.save_scores({"overall": 3})


def test_readers_are_added_by_name_removed_with_their_scores_kept(client, draft):
    ReconstructionFactory(case__study=draft)
    draft.status = Study.Status.OPEN
    draft.save()
    url = reverse("readerstudy:people", args=[draft.slug])
    unknown = client.post(url, {"action": "add-reader", "reader-username": "nobody"})
    assert "is not among the people of your studies" in unknown.content.decode()
    earlier = StudyFactory(slug="earlier")  # dr-lee read an earlier study of lead's
    earlier.researchers.add(draft.researchers.get())
    earlier.assign_reader(UserFactory(username="dr-lee"))
    client.post(url, {"action": "add-reader", "reader-username": "dr-lee"})
    reader = Reader.objects.get(study=draft, user__username="dr-lee")
    assert reader.assignments.count() == 1
    reader.assignments.get().save_scores({"overall": 4})
    client.post(url, {"action": "remove-reader", "reader": reader.pk})
    reader.refresh_from_db()
    assert reader.removed_at is not None and reader.assignments.get().scores.count() == 1
    client.force_login(reader.user)
    assert client.get(reverse("readerstudy:read", args=[draft.slug])).status_code == 404
    assert client.get(reverse("api:next-item", args=[draft.slug])).status_code == 404


def test_an_invitation_admits_one_new_reader_and_lands_them_in_the_study(client, draft):
    ReconstructionFactory(case__study=draft)
    draft.status = Study.Status.OPEN
    draft.save()
    page = client.post(
        reverse("readerstudy:people", args=[draft.slug]),
        {"action": "invite", "invite-note": "Dr. Lee"},
    ).content.decode()
    link = page.split('id="invitation-link" readonly value="')[1].split('"')[0]
    path = link.split("testserver", 1)[1]
    client.logout()
    assert client.get(path).status_code == 200
    joined = client.post(
        path, {"username": "dr-lee", "password1": "Vf7#kq-lung", "password2": "Vf7#kq-lung"}
    )
    assert joined.status_code == 302 and joined["Location"] == reverse(
        "readerstudy:read", args=[draft.slug]
    )
    assert Reader.objects.filter(study=draft, user__username="dr-lee").exists()
    assert client.get(joined["Location"]).status_code == 200, "signed in and reading"
    client.logout()
    again = client.get(path)
    assert again.status_code == 410 and "used already" in again.content.decode()
    expired, token = Invitation.create(draft, by=None)
    Invitation.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(hours=1))
    response = client.get(reverse("readerstudy:invitation", args=[token]))
    assert response.status_code == 410 and "expired" in response.content.decode()
    assert client.get(reverse("readerstudy:invitation", args=["forged"])).status_code == 410


def upload_zip(members) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array, np.float32))
    return buffer.getvalue()


def test_an_upload_is_imported_by_the_task_all_or_nothing(client, draft, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    rng = np.random.default_rng(0)
    ref = rng.random((16, 16)) + 1
    members = {
        "manifest.csv": "case,reference,reconstruction,method,acceleration\n"
        "a,a/ref.npy,a/rec.npy,unet,4\n"
        "a,a/ref.npy,a/missing.npy,cs,4\n",
        "a/ref.npy": npy(ref),
        "a/rec.npy": npy(ref * 0.9),
    }
    url = reverse("api:imports", args=[draft.slug])

    def send(data):
        response = client.post(
            url, {"files": [SimpleUploadedFile("study.zip", data)], "paths": ["study.zip"]}
        )
        assert response.status_code == 202, response.content
        job = StudyImport.objects.get(pk=response.json()["id"])
        import_upload(import_pk=job.pk)  # what the worker runs (a real worker: browser test)
        job.refresh_from_db()
        return job

    failed = send(upload_zip(members))
    assert failed.state == "failed" and draft.cases.count() == 0
    assert any("manifest.csv: line 3" in p and "missing.npy" in p for p in failed.problems)
    members["a/missing.npy"] = npy(ref * 0.8)
    done = send(upload_zip(members))
    assert done.state == "done" and (done.cases_added, done.reconstructions_added) == (1, 2)
    assert not done.folder().exists(), "the upload's files are removed once imported"
    status = client.get(reverse("api:import-detail", args=[draft.slug, done.pk])).json()
    assert status["state"] == "done" and status["finished"] is True and status["notes"] == []
    small = rng.random((12, 12)) + 1
    members = {
        "manifest.csv": "case,reference,reconstruction,method,acceleration\nb,r.npy,s.npy,cs,4\n",
        "r.npy": npy(small),
        "s.npy": npy(small * 0.9),
    }
    noted = client.get(
        reverse("api:import-detail", args=[draft.slug, send(upload_zip(members)).pk])
    ).json()
    assert noted["state"] == "done" and noted["notes"] == [
        "case b (12 x 12) will lack dfd-resnet50-random: too small for them "
        "(smallest side needed: dfd-resnet50-random 16)"
    ], "the importer says which metrics a small case will lack"
    settings.UPLOAD_MAX_BYTES = 100
    too_big = client.post(url, {"files": [SimpleUploadedFile("study.zip", upload_zip(members))]})
    assert too_big.status_code == 413 and "UPLOAD_MAX_BYTES" in too_big.json()["detail"]


def test_the_archive_restores_the_whole_study(client, draft, tmp_path, settings, capsys):
    case = CaseFactory(study=draft)
    for method in ("unet", "cs", "zf"):
        ReconstructionFactory(case=case, method=method, parameters={"lambda": 0.1})
    Question.objects.create(study=draft, key="rank", label="Rank", kind="rank", allow_ties=True)
    Question.objects.create(
        study=draft, key="pick", label="Pick", kind="choice", comparisons_per_reconstruction=2
    )
    draft.status = Study.Status.OPEN
    draft.save()
    reader = draft.assign_reader(UserFactory(username="dr-lee"))
    first = reader.assignments.filter(reconstruction__isnull=False).order_by("position").first()
    first.save_scores({"overall": 2, "snr": 4}, seconds_spent=3.5)
    first.save_scores({"overall": 3}, seconds_spent=1.0)
    ranking = reader.assignments.get(comparison__question__key="rank")
    ranking.save_scores({"rank": [1, 1, 3]}, seconds_spent=2.0)
    ranking.save_scores({"rank": [1, 2, 3]}, seconds_spent=1.0)  # an edit: a revision
    reader.assignments.filter(comparison__question__key="pick").first().save_scores(
        {"pick": [2, 1]}
    )
    from metrics.tasks import compute_case_metrics

    for case in draft.cases.all():
        compute_case_metrics(case_pk=case.pk)
    before = study_record(draft)
    response = client.get(reverse("readerstudy:archive", args=[draft.slug]))
    archive = tmp_path / "knee-archive.zip"
    archive.write_bytes(b"".join(response.streaming_content))
    # Restored beside the original, its reconstruction ids are taken: refused, no file written.
    files_before = sorted(settings.MEDIA_ROOT.rglob("*"))
    with pytest.raises(SystemExit) as exited:
        call_command("import_study", str(archive), study="knee-copy", researcher=["lead"])
    assert exited.value.code == 2 and "is taken on this server" in capsys.readouterr().err
    assert sorted(settings.MEDIA_ROOT.rglob("*")) == files_before
    assert not Study.objects.filter(slug="knee-copy").exists()
    draft.delete()
    reader.user.delete()  # as on a server that never had this reader's account
    call_command("import_study", str(archive), researcher=["lead"])
    restored = Study.objects.get(slug="knee")
    after = study_record(restored)
    assert after == before, "settings, questions, orders, scores, revisions and metric values"
    assert len(after["comparisons"]) == 1 + 3 and any(s["ranks"] for s in after["scores"])
    account = restored.readers.get().user
    assert account.username == "dr-lee" and not account.has_usable_password()


def test_with_email_configured_an_invitation_is_also_mailed(client, draft, settings, mailoutbox):
    settings.EMAIL_ENABLED = True
    client.post(
        reverse("readerstudy:people", args=[draft.slug]),
        {"action": "invite", "invite-note": "Dr. Lee", "invite-email": "lee@example.org"},
    )
    (mail,) = mailoutbox
    assert mail.to == ["lee@example.org"] and "/invite/" in mail.body
    token = mail.body.split("/invite/")[1].split("/")[0]
    assert Invitation.usable(token).email == "lee@example.org"


def test_a_zip_that_is_not_a_study_archive_is_one_clear_error(tmp_path, capsys):
    archive = tmp_path / "photos.zip"
    archive.write_bytes(upload_zip({"cat.png": b"meow"}))
    with pytest.raises(SystemExit) as exited:
        call_command("import_study", str(archive), researcher=["lead"])
    assert exited.value.code == 2
    assert "not a study archive: no readable study.json" in capsys.readouterr().err
    assert not Study.objects.exists()


# --- issue 31: the people page's rules, an invitation raced, hostile upload names ----------


def test_an_active_reader_is_not_made_a_co_researcher_and_a_researcher_not_a_reader(client, draft):
    ann = UserFactory(username="ann")
    draft.assign_reader(ann)
    url = reverse("readerstudy:people", args=[draft.slug])
    page = client.post(
        url, {"action": "add-researcher", "researcher-username": "ann"}, follow=True
    ).content.decode()
    assert "remove them as a reader first" in page
    assert not draft.researchers.filter(username="ann").exists(), "blinding holds"
    page = client.post(
        url, {"action": "add-reader", "reader-username": "lead"}, follow=True
    ).content.decode()
    assert "runs this study" in page and not draft.readers.filter(user__username="lead").exists()


def test_an_invitation_accepted_by_another_browser_meanwhile_creates_no_account(client, draft):
    """The window between opening the link and signing up: another browser accepts the same
    invitation while this one's account is being saved (a pre_save signal stands in for it)."""
    from django.contrib.auth import get_user_model
    from django.db.models.signals import pre_save

    invitation, token = Invitation.create(draft, by=None)
    other = UserFactory(username="first-browser")
    client.logout()

    def the_other_browser_wins(sender, instance, **kwargs):
        if instance.username == "second-browser":
            Invitation.objects.get(pk=invitation.pk).accept(other)

    pre_save.connect(the_other_browser_wins, sender=get_user_model())
    try:
        response = client.post(
            reverse("readerstudy:invitation", args=[token]),
            {"username": "second-browser", "password1": "Vf7#kq-lung", "password2": "Vf7#kq-lung"},
            follow=True,
        )
    finally:
        pre_save.disconnect(the_other_browser_wins, sender=get_user_model())
    assert "used already" in response.content.decode()
    assert not get_user_model().objects.filter(username="second-browser").exists()


def test_a_folder_of_more_than_a_thousand_files_reaches_the_import(client, draft):
    from django.core.files.uploadedfile import SimpleUploadedFile

    names = [f"images/{i:04d}.npy" for i in range(1_100)]
    files = [SimpleUploadedFile(name.split("/")[1], b"x") for name in names]
    response = client.post(
        reverse("api:imports", args=[draft.slug]), {"files": files, "paths": names}
    )
    assert response.status_code == 202, response.content[:300]


def test_an_overlong_member_name_is_a_sentence(client, draft):
    from django.core.files.uploadedfile import SimpleUploadedFile

    url = reverse("api:imports", args=[draft.slug])
    members = {"manifest.csv": "case\n", f"{'x' * 300}.npy": b"x"}
    response = client.post(
        url, {"files": [SimpleUploadedFile("s.zip", upload_zip(members))], "paths": ["s.zip"]}
    )
    job = StudyImport.objects.get(pk=response.json()["id"])
    import_upload(import_pk=job.pk)
    job.refresh_from_db()
    assert job.state == "failed" and "longer than 255 bytes" in job.problems[0], job.problems


def test_a_co_researcher_cannot_remove_the_studys_creator(client, draft):
    creator = UserFactory(username="creator")
    draft.created_by = creator
    draft.save()
    draft.researchers.add(creator)  # "lead", signed in, is the co-researcher
    page = client.post(
        reverse("readerstudy:people", args=[draft.slug]),
        {"action": "remove-researcher", "researcher": creator.pk},
        follow=True,
    ).content.decode()
    assert "created this study and stays its researcher" in page
    assert draft.researchers.filter(pk=creator.pk).exists()
    assert "(created the study)" in page


def test_the_new_study_page_records_its_creator(client, lead):
    from django.contrib.auth.models import Permission

    lead.user_permissions.add(Permission.objects.get(codename="add_study"))
    client.post(
        reverse("readerstudy:new-study"),
        {"title": "Knee", "slug": "knee-new", "presentation": "side-by-side"},
    )
    assert Study.objects.get(slug="knee-new").created_by == lead


def test_adding_by_name_tells_nobody_which_accounts_exist(client, draft):
    """An account that shares no study with the researcher gets the very answer a name
    nobody has gets (issue 31): the page is no oracle of user names."""
    UserFactory(username="stranger")
    url = reverse("readerstudy:people", args=[draft.slug])
    answers = []
    for name in ("stranger", "nobody-at-all"):
        for action in ("add-reader", "add-researcher"):
            page = client.post(url, {"action": action, f"{action[4:]}-username": name})
            text = page.content.decode().replace(name, "NAME")
            answers.append(text.split('class="error"')[1].split("</p>")[0])
    assert answers[:2] == answers[2:], "the same words for an account and for no account"
    assert not draft.readers.exists() and list(draft.researchers.all()) == [
        draft.researchers.get()
    ]
    researcher = UserFactory(username="creator-elsewhere")
    from django.contrib.auth.models import Permission

    researcher.user_permissions.add(Permission.objects.get(codename="add_study"))
    client.post(url, {"action": "add-researcher", "researcher-username": "creator-elsewhere"})
    assert draft.researchers.filter(username="creator-elsewhere").exists(), (
        "a co-researcher may be anyone allowed to create studies here"
    )


def test_an_unexpected_import_failure_is_a_sentence_without_server_paths(
    client, draft, settings, tmp_path
):
    """The media folder's `images` is a file (a broken deployment): storing raises an OSError
    that names the server's folders; the researcher reads a sentence, the log has the rest."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()
    (settings.MEDIA_ROOT / "images").write_bytes(b"")
    ref = np.random.default_rng(0).random((16, 16)) + 1
    members = {
        "manifest.csv": "case,reference,reconstruction,method,acceleration\na,r.npy,x.npy,m,4\n",
        "r.npy": npy(ref),
        "x.npy": npy(ref * 0.9),
    }
    response = client.post(
        reverse("api:imports", args=[draft.slug]),
        {"files": [SimpleUploadedFile("s.zip", upload_zip(members))], "paths": ["s.zip"]},
    )
    job = StudyImport.objects.get(pk=response.json()["id"])
    import_upload(import_pk=job.pk)
    job.refresh_from_db()
    (problem,) = job.problems
    assert job.state == "failed" and "stopped unexpectedly (FileExistsError)" in problem, problem
    assert "/" not in problem and str(tmp_path) not in problem, "no server path"
    assert draft.cases.count() == 0

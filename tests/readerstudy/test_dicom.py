"""Blinded DICOM delivery: only the reader's own items, nothing that identifies the method."""

import io

import numpy as np
import pydicom
import pytest
from django.urls import reverse

from readerstudy.dicom import STORED_MAX, blinded_dicom
from readerstudy.models import Study, array_file
from tests.readerstudy.factories import (
    CaseFactory,
    ReconstructionFactory,
    StudyFactory,
    UserFactory,
    smooth_image,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup():
    study = StudyFactory()
    case = CaseFactory(
        study=study, name="knee-patient-17", reference=array_file(smooth_image(0) * 100)
    )
    faint = ReconstructionFactory(
        case=case,
        method="cs-secret",
        acceleration=8,
        image=array_file(smooth_image(0) * 50),
        source_name="knee17_cs8x.npy",
    )
    reader = UserFactory()
    study.assign_reader(reader)
    return study, case, faint, reader


def fetch(client, item, which):
    return client.get(
        reverse("readerstudy:item-image", kwargs={"public_id": item.public_id, "which": which})
    )


def test_reader_gets_both_images_scaled_by_the_reference(client, setup):
    study, case, faint, reader = setup
    item = study.readers.get(user=reader).assignments.get()
    client.force_login(reader)
    reference = pydicom.dcmread(io.BytesIO(fetch(client, item, "reference").content))
    reconstruction = pydicom.dcmread(io.BytesIO(fetch(client, item, "reconstruction").content))
    assert reference.pixel_array.max() == STORED_MAX
    assert abs(int(reconstruction.pixel_array.max()) - STORED_MAX // 2) <= 1, (
        "same scale as the reference"
    )
    assert (
        reconstruction.WindowCenter == reference.WindowCenter
        and reconstruction.WindowWidth == reference.WindowWidth
    )


def test_headers_and_bytes_carry_nothing_identifying(client, setup):
    study, case, faint, reader = setup
    item = study.readers.get(user=reader).assignments.get()
    client.force_login(reader)
    for which in ("reference", "reconstruction"):
        body = fetch(client, item, which).content
        header = body.split(b"\xe0\x7f\x10\x00")[0]  # everything before the PixelData tag
        for secret in (b"cs-secret", b"knee", b"patient", b"npy", reader.username.encode()):
            assert secret not in header, (which, secret)
        dataset = pydicom.dcmread(io.BytesIO(body))
        assert {e.keyword for e in dataset} <= {
            "SOPClassUID",
            "SOPInstanceUID",
            "StudyInstanceUID",
            "SeriesInstanceUID",
            "Modality",
            "PatientName",
            "PatientID",
            "Rows",
            "Columns",
            "SamplesPerPixel",
            "PhotometricInterpretation",
            "BitsAllocated",
            "BitsStored",
            "HighBit",
            "PixelRepresentation",
            "RescaleIntercept",
            "RescaleSlope",
            "WindowCenter",
            "WindowWidth",
            "PixelData",
            "NumberOfFrames",
        }


def test_uids_differ_between_readers_for_the_same_image(client, setup):
    study, case, faint, reader = setup
    other = UserFactory()
    study.assign_reader(other)
    uids = []
    for user in (reader, other):
        client.force_login(user)
        item = study.readers.get(user=user).assignments.get()
        uids.append(
            pydicom.dcmread(
                io.BytesIO(fetch(client, item, "reconstruction").content)
            ).SOPInstanceUID
        )
    assert uids[0] != uids[1]


def test_other_users_get_404(client, setup):
    study, case, faint, reader = setup
    item = study.readers.get(user=reader).assignments.get()
    researcher = UserFactory()
    study.researchers.add(researcher)
    for intruder in (UserFactory(), researcher):
        client.force_login(intruder)
        assert fetch(client, item, "reconstruction").status_code == 404
    client.logout()
    assert fetch(client, item, "reconstruction").status_code == 302, "anonymous: to the login page"


def test_reference_is_not_served_when_the_study_shows_reconstructions_alone(client, setup):
    study, case, faint, reader = setup
    Study.objects.filter(pk=study.pk).update(presentation=Study.Presentation.ALONE)
    client.force_login(reader)
    item = study.readers.get(user=reader).assignments.get()
    assert fetch(client, item, "reference").status_code == 404
    assert fetch(client, item, "reconstruction").status_code == 200


def test_volumes_become_multiframe():
    volume = np.stack([smooth_image(i) for i in range(3)])
    dataset = pydicom.dcmread(
        io.BytesIO(blinded_dicom(volume, reference_max=volume.max(), uid_entropy=["x"]))
    )
    assert dataset.NumberOfFrames == 3 and dataset.pixel_array.shape == (3, 32, 32)

"""Blinded DICOM for the viewer: pixels and the minimum a viewer needs, nothing else.

No method, acceleration, parameters, case name, file name, dates or people. Intensities are
scaled by the case's reference maximum, the same for every reconstruction of that case, so a
pixel range or default window cannot tell one reconstruction from another. UIDs derive from a
secret and the reader's own item id: stable for caching, unlinkable across readers.
"""

from __future__ import annotations

import io

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

STORED_MAX = 4095  # 12-bit, as MR scanners store


def to_stored_values(image: np.ndarray, reference_max: float) -> np.ndarray:
    """Scale to 0..4095 by the case's reference maximum (values above it are clipped)."""
    scaled = np.asarray(image, np.float64) * (STORED_MAX / max(float(reference_max), 1e-12))
    return np.clip(np.rint(scaled), 0, STORED_MAX).astype(np.uint16)


def blinded_dicom(image: np.ndarray, *, reference_max: float, uid_entropy: list[str]) -> bytes:
    """An MR DICOM object (single or multi-frame) holding only what a viewer needs."""
    pixels = to_stored_values(image, reference_max)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[*uid_entropy, "instance"])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[*uid_entropy, "study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[*uid_entropy, "series"])
    ds.Modality = "MR"
    ds.PatientName = "Anonymous"
    ds.PatientID = "anonymous"
    ds.Rows, ds.Columns = pixels.shape[-2:]
    if pixels.ndim == 3:
        ds.NumberOfFrames = pixels.shape[0]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleIntercept, ds.RescaleSlope = 0, 1
    ds.WindowCenter, ds.WindowWidth = STORED_MAX // 2 + 1, STORED_MAX + 1
    ds.PixelData = pixels.tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()

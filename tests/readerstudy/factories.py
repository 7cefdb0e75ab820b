import factory
import numpy as np
from django.contrib.auth import get_user_model

from readerstudy.models import Case, Reconstruction, Study, array_file


def smooth_image(seed: int = 0, shape=(32, 32)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[: shape[0], : shape[1]]
    return (np.sin(x / 4.0) + np.cos(y / 5.0) + 2.5 + 0.05 * rng.standard_normal(shape)).astype(
        np.float32
    )


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("password")


class StudyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Study
        skip_postgeneration_save = True

    slug = factory.Sequence(lambda n: f"study-{n}")
    title = factory.Sequence(lambda n: f"Study {n}")
    status = Study.Status.OPEN

    @factory.post_generation
    def questions(self, create, extracted, **kwargs):
        if create:
            self.add_default_questions()


class CaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Case

    study = factory.SubFactory(StudyFactory)
    name = factory.Sequence(lambda n: f"case-{n}")
    reference = factory.LazyFunction(lambda: array_file(smooth_image()))
    shape = [32, 32]


class ReconstructionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Reconstruction

    case = factory.SubFactory(CaseFactory)
    method = "zero-filled"
    acceleration = 4.0
    image = factory.Sequence(lambda n: array_file(smooth_image(seed=n + 1) * 0.9))

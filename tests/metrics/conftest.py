import pytest
import torch


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request):
    """Every DFD test runs on the CPU, and on CUDA where a GPU is visible."""
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA GPU visible")
    return request.param

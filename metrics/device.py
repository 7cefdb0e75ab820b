"""Choice of the torch device for metric computation."""


def resolve_device(requested: str = "auto") -> str:
    """Map "auto" to "cuda" when a GPU is visible, else "cpu"; refuse "cuda" without one."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {requested!r} requested but no CUDA GPU is visible")
    if requested != "cpu" and not requested.startswith("cuda"):
        raise ValueError(f"unknown device {requested!r}; use cpu, cuda or auto")
    return requested

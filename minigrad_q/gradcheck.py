"""(being written)"""


class GradcheckError(AssertionError):
    pass


def gradcheck(*args, **kwargs):  # type: ignore[no-untyped-def]
    raise NotImplementedError

"""Share links: the signature covers everything the link grants, and its expiry."""

from __future__ import annotations

import dataclasses

import pytest

from core.access.share_links import PlotGrant, ShareCheck, check_plot_signature, sign_plot

SECRET = b"s" * 32
GRANT = PlotGrant("experiment", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "weights", (960, 540, 100), 2000)


def test_a_signature_is_valid_until_it_expires() -> None:
    signature = sign_plot(SECRET, GRANT)

    assert len(signature) == 43 and "=" not in signature
    assert check_plot_signature(SECRET, GRANT, signature, now=1999.5) is ShareCheck.VALID
    assert check_plot_signature(SECRET, GRANT, signature, now=2000) is ShareCheck.VALID
    assert check_plot_signature(SECRET, GRANT, signature, now=2000.001) is ShareCheck.EXPIRED


@pytest.mark.parametrize(
    "changed",
    [
        {"kind": "study"},
        {"id": "01ARZ3NDEKTSV4RRFFQ69G5FAW"},
        {"name": "gradients"},
        {"size": (961, 540, 100)},
        {"size": (960, 540, 101)},
        {"expires": 2001},
    ],
)
def test_the_signature_covers_every_part_of_the_grant(changed: dict[str, object]) -> None:
    signature = sign_plot(SECRET, GRANT)
    other = dataclasses.replace(GRANT, **changed)  # type: ignore[arg-type]
    assert check_plot_signature(SECRET, other, signature, now=0) is ShareCheck.INVALID


def test_another_secret_or_a_mangled_signature_is_invalid() -> None:
    signature = sign_plot(SECRET, GRANT)
    assert check_plot_signature(b"t" * 32, GRANT, signature, now=0) is ShareCheck.INVALID
    for bad in ("", "abc", signature[:-1], signature + "A", "!" * 43, signature.upper()):
        assert check_plot_signature(SECRET, GRANT, bad, now=0) is ShareCheck.INVALID

"""The method registry: declared metadata agrees with the functions it describes."""

import inspect

import pytest

from varseg.methods import METHODS, MethodSpec, get_method, get_spec, method_names


def _signature(spec):
    try:
        return inspect.signature(spec.load()).parameters
    except ImportError as err:  # torch-only methods without torch
        pytest.skip(str(err))


@pytest.mark.parametrize("name", sorted(METHODS))
def test_declared_options_are_the_signature(name):
    spec = METHODS[name]
    params = _signature(spec)
    assert list(params)[:2] == ["image", "n_phases"]
    assert "channel_axis" in params
    declared = set(spec.options)
    real = set(params) - {"image", "n_phases", "channel_axis"} - set(spec.deprecated)
    assert declared == real, (
        f"{name}: declared-only {declared - real}, undeclared {real - declared}"
    )
    if spec.length_param is not None:
        assert spec.length_param in params
    if spec.iteration_param is not None:
        assert spec.iteration_param in spec.options
    assert set(spec.cli_defaults) <= declared
    assert spec.takes_seed == ("seed" in params)
    assert spec.takes_device == ("device" in params)
    assert spec.takes_progress == ("progress" in params)


def test_shared_kwargs_follow_the_declaration():
    cv = get_spec("chan-vese")
    assert cv.shared_kwargs(lam=0.2, seed=3, progress=False, device="cpu") == {
        "mu": pytest.approx(0.4),
        "seed": 3,
    }
    otsu = get_spec("otsu")
    assert otsu.shared_kwargs(lam=0.2, seed=3) == {"lam": 0.2}
    custom = MethodSpec(
        "mine",
        lambda image, n_phases, **kw: None,
        length_param=None,
        takes_seed=False,
        takes_progress=True,
    )
    assert custom.shared_kwargs(lam=0.2, seed=1, progress=False) == {"progress": False}


def test_lookup_errors_and_callables():
    assert method_names() == sorted(METHODS)
    with pytest.raises(ValueError, match="unknown method 'nope'.*chan-vese"):
        get_spec("nope")
    with pytest.raises(ValueError, match="unknown method"):
        get_method("nope")

    def f(image, n_phases):
        return image

    assert get_method(f) is f
    assert get_spec(METHODS["otsu"]) is METHODS["otsu"]

"""Registries: names map to specs, MODULE:ATTR imports where allowed, errors name the flag."""

import pytest

from gcsampler.core.registry import Registry, import_reference, is_reference
from gcsampler.factorization import models, priors, problems, samplers
from gcsampler.runs.methods import METHODS
from gcsampler.splitting.moves import MOVES


def test_names_are_in_registration_order_and_resolve():
    table = Registry("--thing", {"a": 1, "b": 2})
    assert table.names == ("a", "b") and list(table) == ["a", "b"] and len(table) == 2
    assert table.resolve("b") == 2 and table.check("a") == "a"
    table.register("c", 3)
    assert table.names == ("a", "b", "c") and table["c"] == 3


@pytest.mark.parametrize("name", ["a", "x:y"])
def test_registering_twice_or_a_reference_is_refused(name):
    table = Registry("--thing", {"a": 1})
    with pytest.raises(ValueError, match="--thing"):
        table.register(name, 4)


def test_unknown_names_name_the_flag_and_what_it_allows():
    with pytest.raises(ValueError, match=r"--thing must be one of a, b, got 'z'"):
        Registry("--thing", {"a": 1, "b": 2}).check("z")
    with pytest.raises(ValueError, match=r"--thing must be one of a or MODULE:ATTR, got 'z'"):
        Registry("--thing", {"a": 1}, importable=True).check("z")
    with pytest.raises(ValueError, match="--thing must be one of a, got 'math:pi'"):
        Registry("--thing", {"a": 1}).resolve("math:pi")  # not importable: refused


def test_references_import_their_attribute():
    import math
    import os.path

    table = Registry("--thing", {}, importable=True)
    assert table.resolve("math:pi") == math.pi
    assert table.resolve("os.path:join") is os.path.join
    assert import_reference("os:path.join") is os.path.join
    assert [is_reference(t) for t in ("a:b", "a.b:c.d", "a", "a:", ":b", "a b:c", 3)] == [
        True, True, False, False, False, False, False]
    with pytest.raises(ValueError, match="cannot import no_such_module_xyz"):
        table.resolve("no_such_module_xyz:f")
    with pytest.raises(ValueError, match="math has no attribute tau2"):
        table.resolve("math:tau2")


def test_the_registries_of_gcsampler():
    assert problems.TASKS.names == ("sensing", "completion")
    assert models.ACTIVATIONS.names == ("linear", "tanh", "relu", "leaky_relu")
    assert priors.PRIORS.names == ("gaussian", "uniform")
    assert samplers.SAMPLERS.names == ("direct", "last_layer", "wishart")
    assert MOVES.names == ("ess", "ess4", "ess8", "pcn")
    assert METHODS.names == ("rejection", "splitting")
    assert all(registry.importable for registry in (problems.TASKS, models.ACTIVATIONS,
                                                    priors.PRIORS))
    assert not any(registry.importable for registry in (samplers.SAMPLERS, MOVES, METHODS))
    assert all(METHODS[name].name == name for name in METHODS)
